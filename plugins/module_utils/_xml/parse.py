# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""Safe XML parsing and serialisation shared by the XML adapters.

Documents come from users and templates: entities are never resolved, nothing is fetched from the
network, and a document with a DTD or an entity declaration is refused outright (libvirt's own
XML never carries one).  Bytes are decoded here, not by libxml2, so that no encoding can hide a
DTD from that check: libxml2 only reads UTF-8 text that was looked at first, and reads no file a
DTD names should one ever reach it.
"""

from __future__ import annotations

import codecs
import functools
import re
import traceback
from typing import Protocol, cast

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import XmlError

try:
    from lxml import etree
except ImportError:  # pragma: no cover - exercised by the import sanity test
    # Only HAS_LXML guards it: parse_xml refuses to run without lxml, and nothing else reaches etree first.
    etree = None  # type: ignore[assignment]  # the module, typed by lxml-stubs, or None when lxml is missing
    LXML_IMPORT_ERROR: str | None = traceback.format_exc()
else:
    LXML_IMPORT_ERROR = None

__all__ = ["HAS_LXML", "LXML_IMPORT_ERROR", "etree", "parse_written", "parse_xml", "to_text"]

HAS_LXML = LXML_IMPORT_ERROR is None


class _DocInfo(Protocol):
    """The parts of lxml's DocInfo read here, typed as lxml has them: lxml-stubs 0.5 lacks ``doctype``
    and says ``internalDTD`` is never None."""

    @property
    def doctype(self) -> str: ...

    @property
    def internalDTD(self) -> etree.DTD | None: ...


# An XML declaration at the very start of a text (a BOM may precede it).
_DECLARATION = re.compile(r"^\ufeff?<\?xml\s[^>]*\?>")
# What libxml2 says when a document's bytes do not decode as its declared (or default) encoding.
_DECODING_ERRORS = ("encoding", "not proper UTF-8", "labelled")
# How a refusal of undecodable bytes ends.
_DECODING_HINT = "its bytes must be in the encoding its XML declaration names (UTF-8 when it names none)"

# How a document's bytes say their encoding, as the XML specification has it (XML 1.0, appendix F): a
# byte order mark first, then the first four bytes of a document without one ('<' and '?' in a
# 16- or 32-bit encoding), then the XML declaration of an ASCII-compatible one; UTF-8 when none says.
_BYTE_ORDER_MARKS = (
    (b"\x00\x00\xfe\xff", "UTF-32BE"),
    (b"\xff\xfe\x00\x00", "UTF-32LE"),
    (b"\xef\xbb\xbf", "UTF-8"),
    (b"\xfe\xff", "UTF-16BE"),
    (b"\xff\xfe", "UTF-16LE"),
)
_FIRST_BYTES = {
    b"\x00\x00\x00<": "UTF-32BE",
    b"<\x00\x00\x00": "UTF-32LE",
    b"\x00<\x00?": "UTF-16BE",
    b"<\x00?\x00": "UTF-16LE",
}
# First bytes of encodings Python cannot decode, or that no libvirt document is written in.
_REFUSED_FIRST_BYTES = {
    b"\x00\x00<\x00": "UCS-4 in the byte order 2143",
    b"\x00<\x00\x00": "UCS-4 in the byte order 3412",
    b"\x00\x00\xff\xfe": "UCS-4 in the byte order 2143",
    b"\xfe\xff\x00\x00": "UCS-4 in the byte order 3412",
    b"Lo\xa7\x94": "EBCDIC",
}
# The encoding an ASCII-compatible document's XML declaration names (XML 1.0, rule 80 and 81).
_DECLARED_ENCODING = re.compile(
    rb"<\?xml[ \t\r\n][^>]*?encoding[ \t\r\n]*=[ \t\r\n]*(?:\"([A-Za-z][A-Za-z0-9._-]*)\"|'([A-Za-z][A-Za-z0-9._-]*)')"
)
# Python's codecs that are no character encoding of a document, but ways to write text in ASCII.
_PYTHON_ONLY_CODECS = frozenset(("unicode-escape", "raw-unicode-escape", "punycode", "idna", "undefined"))
_DECLARATION_BYTES = re.compile(rb"<\?xml[ \t\r\n][^>]*\?>")
# What may stand before the root element besides a document type declaration: blanks, comments and
# processing instructions (the XML declaration is one to this pattern).  libxml2 reads each the same
# way (a comment ends at the first '-->', a processing instruction at the first '?>'), or refuses it.
_PROLOG_ITEMS = re.compile(r"(?:[ \t\r\n]+|<!--.*?-->|<\?.*?\?>)*", re.DOTALL)


class _ExternalRefused(Exception):
    """Raised by the parser's resolver: nothing outside the document is ever read."""


@functools.cache
def _refusing_resolver() -> etree.Resolver:
    """One resolver for every parser: it holds nothing.  (Made when first asked for: lxml may be missing.)"""

    class Refuse(etree.Resolver):
        # lxml-stubs leave out the context lxml passes: optional here, so the override matches both.
        def resolve(self, system_url: str, public_id: str, context: object = None) -> None:
            raise _ExternalRefused(system_url)

    return Refuse()


def _parser(keep_blank_text: bool) -> etree.XMLParser:
    parser = etree.XMLParser(
        # The parser reads the UTF-8 that parse_xml hands it, whatever its first bytes or an XML
        # declaration say: left to guess, libxml2 reads text with NULs first ('<\0?\0') as UTF-16.
        encoding="utf-8",
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=False,
        remove_blank_text=not keep_blank_text,
        # A CDATA section stays one, so that a document written back keeps it as it was.
        strip_cdata=False,
        # No xml:id lookups happen here; the table of them is work for nothing.
        collect_ids=False,
    )
    # A document with a DTD never gets here; should one, libxml2 reads no file and no device for it.
    parser.resolvers.add(_refusing_resolver())
    return parser


def _declares_dtd(text: str) -> bool:
    """Whether ``text`` has a document type declaration (the only place an entity is declared).

    One can only stand in the prolog, after the XML declaration, blanks, comments and processing
    instructions: ``<!DOCTYPE`` in a comment, or anywhere in the root element, declares nothing.
    """
    if "<!DOCTYPE" not in text and "<!ENTITY" not in text:
        return False
    return text.startswith(("<!DOCTYPE", "<!ENTITY"), _prolog_end(text))


def _prolog_end(text: str) -> int:
    """Where the prolog of ``text`` ends, but for a document type declaration: at the DTD or the root element."""
    start = 1 if text.startswith("\ufeff") else 0
    found = _PROLOG_ITEMS.match(text, start)
    return start if found is None else found.end()


def _root_started(text: str) -> bool:
    """Whether the root element's start tag begins in ``text``: past the prolog, so past any DTD."""
    prolog_end = _prolog_end(text)
    return text.startswith("<", prolog_end) and not text.startswith(("<!", "<?"), prolog_end)


def _python_codec(name: str) -> str | None:
    """The Python codec of the encoding ``name``, None when Python has no text encoding of that name."""
    try:
        codec = codecs.lookup(name).name
        # Python's bytes-to-bytes and text-to-text codecs (rot13, base64...) are no text encoding.
        "<".encode(codec)
    except (LookupError, UnicodeError):
        return None
    # Python's own codecs that read escapes in the text: no XML document is in one, libxml2 knows none.
    return None if codec in _PYTHON_ONLY_CODECS else codec


def _detect_encoding(data: bytes, what: str) -> tuple[str, str, int]:
    """The encoding of ``data`` (its name, the Python codec, where the document starts after a byte order mark)."""
    for mark, name in _BYTE_ORDER_MARKS:
        if data.startswith(mark):
            if data[:4] in _REFUSED_FIRST_BYTES:
                break
            return name, name.lower(), len(mark)
    first = data[:4]
    if first in _REFUSED_FIRST_BYTES:
        raise XmlError(f"{what} cannot be decoded: it is in {_REFUSED_FIRST_BYTES[first]}; {_DECODING_HINT}")
    if first in _FIRST_BYTES:
        name = _FIRST_BYTES[first]
        return name, name.lower(), 0
    if not data.startswith(b"<?xml"):
        return "UTF-8", "utf-8", 0
    declared = _DECLARED_ENCODING.match(data)
    if declared is None:
        return "UTF-8", "utf-8", 0
    name = (declared.group(1) or declared.group(2)).decode("ascii")
    codec = _python_codec(name)
    if codec is None:
        raise XmlError(f"{what} cannot be decoded: Unsupported encoding: {name}; {_DECODING_HINT}")
    declaration = _DECLARATION_BYTES.match(data)
    written = data[: declared.end() if declaration is None else declaration.end()]
    try:
        compatible = written.decode(codec) == written.decode("ascii")
    except (UnicodeDecodeError, LookupError):
        compatible = False
    if not compatible:
        # Say UTF-16 in a document written one byte per character: its bytes say otherwise.
        raise XmlError(
            f"{what} cannot be decoded: Document labelled {name} but its XML declaration is not written in "
            f"{name}; {_DECODING_HINT}"
        )
    return name, codec, 0


def _decode(data: bytes, what: str) -> str:
    """``data`` decoded as its byte order mark, first bytes or XML declaration say, UTF-8 by default."""
    name, codec, start = _detect_encoding(data, what)
    try:
        return data[start:].decode(codec)
    except UnicodeDecodeError as error:
        bad = start + error.start
    # What comes before the bad bytes decodes.  A document whose root element starts there, and
    # without a DTD, is UTF-8 to libxml2 too: libxml2 then reads what was checked here, and says
    # where it stops as it always did.
    before = data[start:bad].decode(codec)
    if codec == "utf-8" and not _declares_dtd(before) and _root_started(before):
        try:
            etree.fromstring(data, _parser(keep_blank_text=True))
        except etree.XMLSyntaxError as parse_error:
            if any(word in str(parse_error) for word in _DECODING_ERRORS):
                raise XmlError(f"{what} cannot be decoded: {parse_error}; {_DECODING_HINT}") from None
            raise XmlError(f"{what} is not well-formed XML: {parse_error}") from None
        except _ExternalRefused:
            pass
    line = before.count("\n") + 1
    column = len(before) - before.rfind("\n")
    raise XmlError(
        f"{what} cannot be decoded: Invalid bytes in character encoding {name}, line {line}, column {column}; "
        f"{_DECODING_HINT}"
    )


def parse_xml(
    text: str | bytes, what: str, root_tag: str | None = None, keep_blank_text: bool = True
) -> etree._Element:
    """Parse ``text`` into an element, refusing DTDs and entities; ``what`` names it in errors.

    Bytes are decoded here first, as the XML specification says (a byte order mark, the first bytes,
    the XML declaration, else UTF-8), and then read as text is: libxml2 only ever reads UTF-8 that
    was looked at here, so no encoding can hide a DTD from the check.

    ``keep_blank_text=False`` drops the whitespace between elements, for a document that is only
    read (host capabilities): fewer nodes make a faster parse.  A document written back keeps it.
    """
    if not HAS_LXML:
        raise XmlError("the lxml Python library is required to read XML; install it (pip install lxml)")
    if isinstance(text, bytes):
        text = _decode(text, what)
    elif not isinstance(text, str):
        raise XmlError(f"{what} must be XML text, got {type(text).__name__}")
    # Text is decoded already: an XML declaration's encoding (say UTF-16) no longer describes it.
    text = _DECLARATION.sub("", text, count=1)
    if _declares_dtd(text):
        raise XmlError(f"{what} declares a DTD or entity, which is refused")
    try:
        root: etree._Element = etree.fromstring(text.encode("utf-8"), _parser(keep_blank_text))
    except etree.XMLSyntaxError as error:
        raise XmlError(f"{what} is not well-formed XML: {error}") from None
    except _ExternalRefused as refused:
        raise XmlError(f"{what} refers to an outside document ({refused}), which is refused") from None
    docinfo = cast(_DocInfo, root.getroottree().docinfo)
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise XmlError(f"{what} declares a DTD or entity, which is refused")
    if root_tag is not None and root.tag != root_tag:
        raise XmlError(f"{what} must have a <{root_tag}> root element, found <{root.tag}>")
    return root


@functools.cache
def _written_parser() -> etree.XMLParser:
    """The parser of ``parse_written``, made once (lxml locks a parser while it parses: threads may share it)."""
    return _parser(keep_blank_text=True)


def parse_written(markup: str | bytes) -> etree._Element:
    """The element ``markup`` writes: text the collection wrote (``markup.py``) or lxml serialised from a
    parsed document (``tree.py:detached_copy``), parsed with ``parse_xml``'s parser set-up.

    Neither ever holds a DTD: no check is made for one, but the parser is the same refusing one.
    """
    return etree.fromstring(markup, _written_parser())


def to_text(element: etree._Element) -> str:
    """Serialise an element as libvirt-style text (unicode, no XML declaration)."""
    return etree.tostring(element, encoding="unicode")
