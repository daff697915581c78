# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Safe parsing: bytes are decoded before libxml2 reads them, and no DTD reaches libxml2 in any encoding.

A UTF-16 or UTF-32 document used to pass the DTD check, which looked for the ASCII bytes of
``<!DOCTYPE``: libxml2 then read the internal subset's parameter entities and the external subset
(a file, a FIFO that hung the run), load_dtd=False and resolve_entities=False notwithstanding.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import XmlError
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml import parse
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import etree, parse_xml, to_text
from ansible_collections.vnuma.libvirt.tests.support.deadline import returns_within

DOMAIN = "<domain type='kvm'><name>g\u00e9</name></domain>"
DTD = "declares a DTD or entity, which is refused"
HINT = "; its bytes must be in the encoding its XML declaration names (UTF-8 when it names none)"
GUARD_SECONDS = 5


def declared(name: str, text: str = DOMAIN) -> str:
    return f"<?xml version='1.0' encoding='{name}'?>\n{text}"


def encodings(text: str) -> list[Any]:
    """``text`` in every encoding the XML specification tells apart by a document's first bytes."""
    return [
        pytest.param(text.encode(), id="utf-8"),
        pytest.param(b"\xef\xbb\xbf" + text.encode(), id="utf-8-bom"),
        pytest.param(text.encode("utf-16"), id="utf-16-bom"),
        pytest.param(b"\xfe\xff" + text.encode("utf-16-be"), id="utf-16be-bom"),
        pytest.param(declared("UTF-16", text).encode("utf-16-le"), id="utf-16le-declared"),
        pytest.param(declared("UTF-16", text).encode("utf-16-be"), id="utf-16be-declared"),
        pytest.param(text.encode("utf-32"), id="utf-32-bom"),
        pytest.param(b"\x00\x00\xfe\xff" + text.encode("utf-32-be"), id="utf-32be-bom"),
        pytest.param(declared("UTF-32", text).encode("utf-32-le"), id="utf-32le-declared"),
        pytest.param(declared("UTF-32", text).encode("utf-32-be"), id="utf-32be-declared"),
    ]


@pytest.fixture
def libxml2_calls(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every document handed to libxml2 by parse_xml, which still parses them."""
    calls: list[bytes] = []
    original = etree.fromstring

    def recording(data: bytes, parser: Any = None) -> Any:
        calls.append(data)
        return original(data, parser)

    monkeypatch.setattr(parse.etree, "fromstring", recording)
    return calls


@pytest.fixture
def guard() -> Iterator[None]:
    """A parse that opens a FIFO blocks until a writer comes: a failure here, not a hung run."""
    with returns_within(GUARD_SECONDS, "the parse (a FIFO opened?)"):
        yield


# -- decoding --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        *encodings(DOMAIN),
        pytest.param(declared("ISO-8859-1").encode("latin-1"), id="latin-1-declared"),
        pytest.param(declared("windows-1252", DOMAIN + "<!-- \u20ac -->").encode("cp1252"), id="cp1252-declared"),
        pytest.param(declared("UTF-8").encode(), id="utf-8-declared"),
    ],
)
def test_bytes_are_decoded_as_their_first_bytes_or_declaration_say(data: bytes, libxml2_calls: list[bytes]) -> None:
    root = parse_xml(data, "doc")
    assert root.find("name").text == "g\u00e9"
    # libxml2 reads the UTF-8 of the text looked at first, without its XML declaration.
    (read,) = libxml2_calls
    assert DOMAIN in read.decode("utf-8")
    assert b"<?xml" not in read


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(
            declared("bogus").encode(), f"doc cannot be decoded: Unsupported encoding: bogus{HINT}", id="unknown"
        ),
        pytest.param(
            declared("rot13").encode(), f"doc cannot be decoded: Unsupported encoding: rot13{HINT}", id="no-text-codec"
        ),
        pytest.param(
            declared("unicode_escape").encode(),
            f"doc cannot be decoded: Unsupported encoding: unicode_escape{HINT}",
            id="python-only-codec",
        ),
        pytest.param(declared("cp500").encode("cp500"), f"doc cannot be decoded: it is in EBCDIC{HINT}", id="ebcdic"),
        pytest.param(
            b"\x00\x00<\x00" + b"\x00\x00d\x00",
            f"doc cannot be decoded: it is in UCS-4 in the byte order 2143{HINT}",
            id="ucs-4-2143",
        ),
        pytest.param(
            declared("UTF-16").encode(),
            f"doc cannot be decoded: Document labelled UTF-16 but its XML declaration is not written in UTF-16{HINT}",
            id="labelled-utf-16-written-in-ascii",
        ),
        pytest.param(
            declared("cp500").encode(),
            f"doc cannot be decoded: Document labelled cp500 but its XML declaration is not written in cp500{HINT}",
            id="labelled-ebcdic-written-in-ascii",
        ),
        pytest.param(
            b"<!-- caf\xe9 -->" + DOMAIN.encode(),
            f"doc cannot be decoded: Invalid bytes in character encoding UTF-8, line 1, column 9{HINT}",
            id="utf-8-bad-in-the-prolog",
        ),
        pytest.param(
            "\ufeff<!-- x\n".encode("utf-16-le")
            + b"\x00\xdc"
            + " -->".encode("utf-16-le")
            + DOMAIN.encode("utf-16-le"),
            f"doc cannot be decoded: Invalid bytes in character encoding UTF-16LE, line 2, column 1{HINT}",
            id="utf-16-lone-surrogate",
        ),
    ],
)
def test_undecodable_bytes_are_refused_before_libxml2_reads_them(
    data: bytes, message: str, libxml2_calls: list[bytes]
) -> None:
    with pytest.raises(XmlError) as caught:
        parse_xml(data, "doc")
    assert str(caught.value) == message
    assert libxml2_calls == []


def test_bad_utf8_in_the_root_element_is_told_as_libxml2_tells_it() -> None:
    """Past the prolog (so past any DTD) libxml2 reads the bytes checked here, and says where it stopped."""
    data = "<?xml version='1.0' encoding='UTF-8'?><domain><!-- caf\u00e9 --></domain>".encode("latin-1")
    with pytest.raises(XmlError) as caught:
        parse_xml(data, "doc")
    assert str(caught.value) == (
        "doc cannot be decoded: Invalid bytes in character encoding, line 1, column 55 (<string>, line 1)" + HINT
    )


def test_utf16_without_mark_or_declaration_is_read_as_utf8() -> None:
    """The XML specification: without a byte order mark or '<?' first, a document is UTF-8."""
    with pytest.raises(XmlError) as caught:
        parse_xml(DOMAIN.encode("utf-16-le"), "doc")
    assert str(caught.value).startswith("doc is not well-formed XML: ")


# -- no DTD reaches libxml2, whatever the encoding -------------------------------------------------------------

_PASSWD_ENTITY = '<!DOCTYPE domain [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>\n'


@pytest.mark.parametrize("data", encodings(_PASSWD_ENTITY + DOMAIN))
def test_a_parameter_entity_is_refused_in_any_encoding(data: bytes, libxml2_calls: list[bytes]) -> None:
    with pytest.raises(XmlError) as caught:
        parse_xml(data, "doc")
    assert str(caught.value) == f"doc {DTD}"
    assert libxml2_calls == []


@pytest.mark.parametrize("subset", ["external", "parameter-entity"])
@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "utf-32"])
@pytest.mark.usefixtures("guard")
def test_a_fifo_named_by_a_dtd_is_never_opened(tmp_path: Path, encoding: str, subset: str) -> None:
    """Used to hang in UTF-16 and UTF-32: libxml2 opened the FIFO of the external subset and waited for a writer."""
    fifo = tmp_path / "dtd.fifo"
    os.mkfifo(fifo)
    if subset == "external":
        doctype = f'<!DOCTYPE domain SYSTEM "{fifo}">\n'
    else:
        doctype = f'<!DOCTYPE domain [<!ENTITY % p SYSTEM "file://{fifo}"> %p;]>\n'
    with pytest.raises(XmlError) as caught:
        parse_xml((doctype + DOMAIN).encode(encoding), "doc")
    assert str(caught.value) == f"doc {DTD}"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("<!-- do not add <!DOCTYPE here -->\n" + DOMAIN, id="comment-in-the-prolog"),
        pytest.param("<?note <!ENTITY x 'y'>?>\n" + DOMAIN, id="processing-instruction-in-the-prolog"),
        pytest.param(
            "<domain type='kvm'><!-- no <!DOCTYPE domain [<!ENTITY a 'b'>]> --><name>g\u00e9</name></domain>",
            id="comment-in-the-root",
        ),
        pytest.param(
            "<domain type='kvm'><name>g\u00e9</name><description><![CDATA[<!DOCTYPE x>]]></description></domain>",
            id="cdata-in-the-root",
        ),
    ],
)
@pytest.mark.parametrize("encoding", [None, "utf-8", "utf-16"])
def test_doctype_as_text_declares_nothing(text: str, encoding: str | None) -> None:
    """Used to be refused: a DOCTYPE can only stand in the prolog, outside comments and processing instructions."""
    root = parse_xml(text if encoding is None else text.encode(encoding), "doc")
    assert root.find("name").text == "g\u00e9"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("<!-- c -->\n<?pi x?>\n<!DOCTYPE domain>" + DOMAIN, f"doc {DTD}", id="after-comment-and-pi"),
        pytest.param("<!-- <!-- -->\n<!DOCTYPE domain>" + DOMAIN, f"doc {DTD}", id="after-a-comment-opening-twice"),
        pytest.param("\ufeff<!ENTITY a 'b'>" + DOMAIN, f"doc {DTD}", id="entity-after-a-bom"),
        pytest.param(
            "<!-- not closed <!DOCTYPE domain [<!ENTITY % p SYSTEM 'file:///etc/passwd'> %p;]>" + DOMAIN,
            "doc is not well-formed XML: Comment not terminated",
            id="in-a-comment-never-closed",
        ),
        pytest.param(
            "<?pi <!DOCTYPE domain [<!ENTITY % p SYSTEM 'file:///etc/passwd'> %p;]>" + DOMAIN,
            "doc is not well-formed XML: ParsePI: PI pi never end",
            id="in-a-processing-instruction-never-closed",
        ),
    ],
)
def test_doctype_in_the_prolog_is_refused(text: str, message: str) -> None:
    with pytest.raises(XmlError) as caught:
        parse_xml(text, "doc")
    assert str(caught.value).startswith(message)


@pytest.mark.usefixtures("guard")
def test_text_is_never_read_as_another_encoding(tmp_path: Path) -> None:
    """Text whose UTF-8 is a UTF-16 document with a DTD ('<', NUL, '?', NUL...): libxml2, left to guess from the
    first bytes, read it as UTF-16 and opened what its DTD named."""
    fifo = tmp_path / "dtd.fifo"
    os.mkfifo(fifo)
    hidden = f'<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE domain SYSTEM "{fifo}"><domain/>'
    text = "".join(f"{character}\x00" for character in hidden)
    assert text.encode("utf-8") == hidden.encode("utf-16-le")
    with pytest.raises(XmlError) as caught:
        parse_xml(text, "doc")
    assert str(caught.value).startswith("doc is not well-formed XML: ")


def test_the_parser_reads_nothing_outside_the_document() -> None:
    """Behind the check: should a DTD reach libxml2, its resolver refuses to read what it names."""
    with pytest.raises(parse._ExternalRefused):
        etree.fromstring(_PASSWD_ENTITY.encode() + b"<domain/>", parse._parser(keep_blank_text=True))


def test_a_declared_encoding_does_not_change_how_libxml2_reads_the_text() -> None:
    """The parser reads UTF-8 whatever a declaration it is handed says."""
    root = etree.fromstring(declared("UTF-16").encode(), parse._parser(keep_blank_text=True))
    assert root.find("name").text == "g\u00e9"


# -- what comes back --------------------------------------------------------------------------------------------


def test_cdata_sections_stay_as_written() -> None:
    """Used to come back as escaped text: the parser dropped the CDATA sections."""
    text = '<domain><description><![CDATA[a <b>x</b> & "y"]]></description></domain>'
    root = parse_xml(text, "doc")
    assert root.find("description").text == 'a <b>x</b> & "y"'
    assert to_text(root) == text


def test_str_and_bytes_read_alike() -> None:
    reads: list[Callable[[], Any]] = [
        lambda: parse_xml(declared("UTF-16"), "doc"),
        lambda: parse_xml(declared("UTF-16").encode("utf-16"), "doc"),
    ]
    assert len({to_text(read()) for read in reads}) == 1
