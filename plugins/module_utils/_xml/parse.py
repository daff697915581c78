# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""Safe XML parsing and serialisation shared by the XML adapters.

Documents come from users and templates: entities are never resolved, nothing is fetched from the
network, and a document with a DTD or an entity declaration is refused outright (libvirt's own
XML never carries one).
"""

from __future__ import annotations

import re
import traceback
from typing import Protocol, cast

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import XmlError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.units import read_digits

try:
    from lxml import etree
except ImportError:  # pragma: no cover - exercised by the import sanity test
    # Only HAS_LXML guards it: parse_xml refuses to run without lxml, and nothing else reaches etree first.
    etree = None  # type: ignore[assignment]  # the module, typed by lxml-stubs, or None when lxml is missing
    LXML_IMPORT_ERROR: str | None = traceback.format_exc()
else:
    LXML_IMPORT_ERROR = None

__all__ = ["HAS_LXML", "LXML_IMPORT_ERROR", "attr_int", "etree", "parse_xml", "to_text"]

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


def _parser(keep_blank_text: bool) -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=False,
        remove_blank_text=not keep_blank_text,
        # No xml:id lookups happen here; the table of them is work for nothing.
        collect_ids=False,
    )


def parse_xml(
    text: str | bytes, what: str, root_tag: str | None = None, keep_blank_text: bool = True
) -> etree._Element:
    """Parse ``text`` into an element, refusing DTDs and entities; ``what`` names it in errors.

    ``keep_blank_text=False`` drops the whitespace between elements, for a document that is only
    read (host capabilities): fewer nodes make a faster parse.  A document written back keeps it.
    """
    if not HAS_LXML:
        raise XmlError("the lxml Python library is required to read XML; install it (pip install lxml)")
    if isinstance(text, str):
        # Text is decoded already: an XML declaration's encoding (say UTF-16) no longer describes it,
        # and the UTF-8 bytes handed to the parser would be read as that encoding.
        data = _DECLARATION.sub("", text, count=1).encode("utf-8")
    elif isinstance(text, bytes):
        data = text
    else:
        raise XmlError(f"{what} must be XML text, got {type(text).__name__}")
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise XmlError(f"{what} declares a DTD or entity, which is refused")
    try:
        # Strip an XML declaration's encoding concerns by parsing bytes.
        root: etree._Element = etree.fromstring(data, _parser(keep_blank_text))
    except etree.XMLSyntaxError as error:
        if isinstance(text, bytes) and any(word in str(error) for word in _DECODING_ERRORS):
            # Bytes are decoded by the parser, as the document's declaration or byte order mark says.
            raise XmlError(
                f"{what} cannot be decoded: {error}; its bytes must be in the encoding its XML declaration "
                "names (UTF-8 when it names none)"
            ) from None
        raise XmlError(f"{what} is not well-formed XML: {error}") from None
    docinfo = cast(_DocInfo, root.getroottree().docinfo)
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise XmlError(f"{what} declares a DTD or entity, which is refused")
    if root_tag is not None and root.tag != root_tag:
        raise XmlError(f"{what} must have a <{root_tag}> root element, found <{root.tag}>")
    return root


def to_text(element: etree._Element) -> str:
    """Serialise an element as libvirt-style text (unicode, no XML declaration)."""
    return etree.tostring(element, encoding="unicode")


def _strict_int(raw: str) -> int:
    """``int()`` accepts ``+1``, ``1_0`` and non-ASCII digits; libvirt accepts none of them."""
    text = raw.strip()
    negative = text.startswith("-")
    value = read_digits(text[1:] if negative else text)
    if value is None:
        raise ValueError(raw)
    # A factor, not unary minus: pylint cannot tell that the None case has left by now.
    return (-1 if negative else 1) * value


def attr_int(element: etree._Element, name: str, what: str, default: int | None = None) -> int | None:
    """An integer attribute, ``default`` when absent; a clear error when it is not an integer."""
    raw = element.get(name)
    if raw is None:
        return default
    try:
        return _strict_int(raw)
    except ValueError:
        raise XmlError(f"{what}: attribute {name}={raw!r} is not an integer") from None
