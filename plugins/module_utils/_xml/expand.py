# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.

"""Expand a domain XML: its vNUMA request (a ``<vnuma>`` element, or the spec stored in its
``<metadata>``) becomes the rendered layout, all in the XML layer, with no Ansible and no libvirt.

- A ``<vnuma>`` child of ``<domain>`` is parsed and taken out, the layout computed for the host,
  the owned parts rewritten, and the spec stored in ``<metadata>``.
- Without one, a spec stored in ``<metadata>`` is rendered again: expanding an expanded domain
  gives the same document back (for the same host), and a changed host gives the new layout.
- Without either, the domain is returned unchanged.

Only elements the layout creates are indented (like their siblings); the rest of the document keeps
its text.  When the document is rewritten, attributes take the quote style most of the input used.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from functools import cached_property

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.devices import PciAddress
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import VnumaError, XmlError
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.layout import Layout
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.partitioner import compute_layout
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.placement import check_preallocation
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.spec import VnumaSpec
from ansible_collections.vnuma.libvirt.plugins.module_utils._core.topology import HostTopology
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.absent import record_after_apply, record_before_apply
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.binding import binding_from_domain
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.capabilities import parse_capabilities
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.changes import Change, ChangeKind
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.domain import DomainNuma, read_guest_shape
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.markup import parse_markup
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.parse import etree, parse_xml, to_text
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.values import domain_name
from ansible_collections.vnuma.libvirt.plugins.module_utils._xml.vnuma import (
    read_stored_spec,
    store_spec,
    take_vnuma_element,
)

__all__ = [
    "SPEC_SOURCES",
    "DomainPlan",
    "ExpandResult",
    "expand_domain",
    "plan_domain",
    "render_plan",
    "serialize_like",
]

# Where the spec came from: the template's <vnuma> element, the domain's <metadata>, or nowhere.
SPEC_SOURCES = ("element", "metadata", None)


@dataclass(frozen=True)
class ExpandResult:
    """The expanded domain XML, the layout rendered into it, and what changed in the owned parts.

    ``changes`` is worked out when first asked for: the ``vnuma_expand`` filter only wants the XML,
    and a large guest has thousands of changed values.
    """

    xml: str
    layout: Layout | None
    spec_source: str | None
    plan: DomainPlan | None = field(default=None, repr=False, compare=False)

    @cached_property
    def changes(self) -> list[Change]:
        """What changed in the owned parts (the stored spec is not one of them)."""
        if self.plan is None:
            return []
        return [change for change in self.plan.changes if change.path != "metadata/vnuma"]

    @property
    def changed(self) -> bool:
        return self.spec_source == "element" or bool(self.changes)


# What may stand before the root element: a byte order mark, the XML declaration, comments, processing
# instructions, blanks.  (A DTD is refused before this is read.)
_PROLOG = re.compile(r"\ufeff?(?:\s|<\?.*?\?>|<!--.*?-->)*", re.DOTALL)
# A start tag as written: its attribute values may hold a '>'.
_START_TAG = re.compile(r"""<([^\s/>]+)(?:\s+[^\s=/>]+\s*=\s*(?:"[^"]*"|'[^']*'))*\s*/?>""")
_BLANKS = " \t\r\n"

# Markup tokens of serialised XML: comments, processing instructions and CDATA sections (left alone),
# start tags.
_TOKEN = re.compile(r"<!--.*?-->|<\?.*?\?>|<!\[CDATA\[.*?\]\]>|<[^!?/][^>]*>", re.DOTALL)
_DOUBLE_QUOTED = re.compile(r"(\s[^\s=<>]+=)\"([^\"']*)\"")
_SINGLE_QUOTED = re.compile(r"\s[^\s=<>]+='")
# Comments, processing instructions and CDATA sections of serialised XML, as separators (kept by
# re.split).  Whichever starts first runs to its own end: none of them can hold the end of another
# ('-->' in a CDATA section is text, and so is '<![CDATA[' in a comment).
_NOT_MARKUP = re.compile(r"(<!--.*?-->|<\?.*?\?>|<!\[CDATA\[.*?\]\]>)", re.DOTALL)
# A '"' in character data: after a '>', before any '<'.  (lxml writes '<' and '>' in character data
# and in attribute values as references, so each '<' opens markup and each '>' closes it, outside
# comments, processing instructions and CDATA sections.)  The text before the first '<' is looked at
# apart: an alternative with '^' here would be tried at every position, several times slower.
_QUOTE_IN_TEXT = re.compile(r'>[^<"]*"')


def _single_quoted(match: re.Match[str]) -> str:
    tag = match.group(0)
    if tag.startswith(("<!", "<?")):
        # A comment, a processing instruction or a CDATA section: its quotes are text.
        return tag
    if "'" not in tag:
        # lxml writes every attribute as ` name="value"` and escapes '"' inside values, so in a tag
        # without "'" each '"' delimits a value and every value turns: the same as the pattern,
        # without a substitution per attribute.
        return tag.replace('"', "'")
    return _DOUBLE_QUOTED.sub(r"\1'\2'", tag)


def _quotes_like(body: str, original: str) -> str:
    """Quote attributes as the input mostly did.

    lxml always writes double quotes; libvirt (and so most domain XML) writes single ones.  Going
    back to the input's style keeps every untouched line as it was, so a diff of the template
    against the result shows the layout and nothing else.  A value holding a quote keeps lxml's,
    and the quotes in comments, processing instructions and CDATA sections are text: they stay.
    """
    singles = len(_SINGLE_QUOTED.findall(original))
    doubles = original.count('="')
    if singles <= doubles:
        return body
    # lxml writes '<' in text as a reference: '<!' opens a comment or a CDATA section.
    if "<!" not in body and "<?" not in body:
        return _single_quoted_markup(body)
    parts = _NOT_MARKUP.split(body)
    # Odd parts are the comments, processing instructions and CDATA sections: left as they are.
    return "".join(part if index % 2 else _single_quoted_markup(part) for index, part in enumerate(parts))


def _single_quoted_markup(markup: str) -> str:
    """``markup`` (no comment, processing instruction or CDATA section in it) with its attribute values
    single-quoted."""
    first_tag = markup.find("<")
    leading_text = markup if first_tag < 0 else markup[:first_tag]
    if "'" not in markup and '"' not in leading_text and not _QUOTE_IN_TEXT.search(markup):
        # Every '"' delimits an attribute value: turn them all at once, as _single_quoted would
        # turn each tag (a large guest has thousands of them).
        return markup.replace('"', "'")
    return _TOKEN.sub(_single_quoted, markup)


def _serialize(root: etree._Element, original: str) -> str:
    """The document's text with the rewritten root, keeping what the input had around it as it was.

    Kept as written: the prolog and the epilog (what stands before and after the root element), the
    root's start tag (the collection never changes the root's attributes; lxml would write its
    namespace declarations first), and CRLF line breaks when the input has no other kind.
    """
    body = _quotes_like(to_text(root), original)
    if "\r" in original and original.count("\n") == original.count("\r\n"):
        # The parser reads every line break as LF: give the body the input's CRLF back.  (lxml writes
        # a CR of the text itself as a reference, so every LF of the body is a line break.)
        body = body.replace("\n", "\r\n")
    # _PROLOG matches the empty string too: a prolog is always found, maybe empty.
    prolog_end = found.end() if (found := _PROLOG.match(original)) else 0
    start_tag = _START_TAG.match(original, prolog_end)
    if (
        start_tag is not None
        # Most often lxml wrote it as it was (after the quotes): nothing to check.
        and not body.startswith(start_tag.group(0))
        and _same_start_tag(start_tag.group(0), start_tag.group(1), root)
    ):
        body = _with_start_tag(body, start_tag.group(0))
    ends = _root_end(original, root, start_tag)
    if ends is None:
        return original[:prolog_end] + body + _written_epilog(root, original)
    end_tag, root_end = ends
    written_end = f"</{_qualified_name(root)}>"
    if end_tag < root_end and body.endswith(written_end):
        # The closing tag as written too (``</domain >``).
        body = body[: -len(written_end)] + original[end_tag:root_end]
    return original[:prolog_end] + body + original[root_end:]


def _same_start_tag(tag: str, name: str, root: etree._Element) -> bool:
    """Whether the start tag ``tag`` of the input gives ``root``'s name, attributes and namespaces."""
    try:
        element = parse_markup(tag if tag.endswith("/>") else f"{tag}</{name}>")
    except etree.XMLSyntaxError:
        return False
    return element.tag == root.tag and element.attrib == root.attrib and element.nsmap == root.nsmap


def _with_start_tag(body: str, tag: str) -> str:
    """``body`` with ``tag`` for its root's start tag (the one closing itself when the body's does)."""
    written = _START_TAG.match(body)
    if written is None:
        return body
    if written.group(0).endswith("/>"):
        if not tag.endswith("/>"):
            tag = tag[:-1] + "/>"
    elif tag.endswith("/>"):
        tag = tag[:-2] + ">"
    return tag + body[written.end() :]


def _blank_back(text: str, position: int) -> int:
    """Where the blanks that end ``text[:position]`` start."""
    while position > 0 and text[position - 1] in _BLANKS:
        position -= 1
    return position


def _line_breaks(text: str) -> str:
    """``text`` with its line breaks as the parser reads them (XML 1.0, 2.11)."""
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def _qualified_name(element: etree._Element) -> str:
    local = etree.QName(element).localname
    return f"{element.prefix}:{local}" if element.prefix else local


def _root_end(original: str, root: etree._Element, start_tag: re.Match[str] | None) -> tuple[int, int] | None:
    """Where the root element's closing tag in ``original`` starts and ends (both where the root's start
    tag ends when it closes itself), found from the end: over the comments and processing instructions
    the parser found after it, each matched with its text, and the blanks between.

    None when the text does not show them as the parser read them (not for a document it parsed).
    A closing tag may hold blanks (``</domain >``), and a comment after it ``</domain>``.
    """
    position = len(original)
    for item in reversed(list(root.itersiblings())):
        position = _blank_back(original, position)
        start: int | None = None
        if isinstance(item, etree._Comment):
            start = _comment_start(original, position, item)
        elif isinstance(item, etree._ProcessingInstruction):
            start = _pi_start(original, position, item)
        if start is None:
            return None
        position = start
    end = _blank_back(original, position)
    if start_tag is not None and start_tag.end() == end and start_tag.group(0).endswith("/>"):
        return end, end
    if not original.endswith(">", 0, end):
        return None
    opening = f"</{_qualified_name(root)}"
    name_end = _blank_back(original, end - 1)
    if not original.endswith(opening, 0, name_end):
        return None
    return name_end - len(opening), end


def _comment_start(original: str, position: int, item: etree._Comment) -> int | None:
    """Where the comment ``item`` that ends ``original[:position]`` starts, or None."""
    if not original.endswith("-->", 0, position):
        return None
    # A comment holds no '--': the last '<!--' before its end is its start.
    start = original.rfind("<!--", 0, position - 3)
    if start < 0 or _line_breaks(original[start + 4 : position - 3]) != (item.text or ""):
        return None
    return start


def _pi_start(original: str, position: int, item: etree._ProcessingInstruction) -> int | None:
    """Where the processing instruction ``item`` that ends ``original[:position]`` starts, or None.

    Its text may hold '<?': the start is the '<?' and target whose text after them is the item's.
    """
    if not original.endswith("?>", 0, position):
        return None
    opening = f"<?{item.target!s}"
    start = original.rfind(opening, 0, position - 2)
    while start >= 0:
        data = original[start + len(opening) : position - 2]
        if (not data or data[0] in _BLANKS) and _line_breaks(data.lstrip(_BLANKS)) == (item.text or ""):
            return start
        start = original.rfind(opening, 0, start)
    return None


def _written_epilog(root: etree._Element, original: str) -> str:
    """The comments and processing instructions after the root as lxml writes them, one a line."""
    items = "".join(f"\n{etree.tostring(item, encoding='unicode')}" for item in root.itersiblings())
    return items + ("\n" if original.endswith("\n") else "")


def _host_topology(host: HostTopology | str | bytes) -> HostTopology:
    if isinstance(host, HostTopology):
        return host
    if isinstance(host, str | bytes):
        return parse_capabilities(host)
    raise XmlError(f"the host must be capabilities XML text or a HostTopology, got {type(host).__name__}")


@dataclass(frozen=True)
class DomainPlan:
    """What a spec makes of one domain on one host, before anything is written.

    ``changes`` lists the owned values that differ, plus ``metadata/vnuma`` when the stored spec
    differs from the one planned.  It is worked out when first asked for, from the models: the
    models are immutable, so it does not matter whether the plan was written into a tree since.
    """

    name: str | None
    spec: VnumaSpec
    layout: Layout
    current: DomainNuma
    target: DomainNuma
    # The spec the domain's <metadata> held when planned (None: none).
    stored: VnumaSpec | None = None

    @cached_property
    def changes(self) -> list[Change]:
        try:
            changes = self.current.changes(self.target)
        except VnumaError as error:
            raise error.naming(self.name) from None
        if self.stored != self.spec:
            before = None if self.stored is None else _spec_text(self.stored)
            changes.append(Change("metadata/vnuma", before, _spec_text(self.spec), ChangeKind.LIVE))
        return changes


class _NotRead(Enum):
    NOT_READ = "not read"


# plan_domain's ``stored`` when the caller has not read the domain's stored spec (None means "none stored").
NOT_READ = _NotRead.NOT_READ


def plan_domain(
    root: etree._Element,
    topology: HostTopology,
    spec: VnumaSpec,
    taken_cpus: Mapping[int, str] | None = None,
    current_vcpus: int | None = None,
    stored: VnumaSpec | _NotRead | None = NOT_READ,
    total_memory_kib: int | None = None,
    host_nodes: Mapping[PciAddress, int | None] | None = None,
) -> DomainPlan:
    """Plan ``spec`` for the parsed domain ``root``; ``current_vcpus`` overrides ``<vcpu current>``.

    ``total_memory_kib`` resizes a guest with virtio-mem cells (``layout_policy.virtio_mem_for``).
    ``host_nodes`` gives the host node of each PCI passthrough device (``pci_locality.pci_locality_for``).

    ``stored`` is the domain's stored spec when the caller already read it (None: none, or one that
    cannot be read), so that one run reads it once.
    """
    name = domain_name(root)
    try:
        guest = read_guest_shape(root)
        if current_vcpus is not None:
            guest = replace(guest, current_vcpus=current_vcpus)
        current = DomainNuma.from_domain(root)
        layout = compute_layout(topology, spec, guest, taken_cpus)
        target = DomainNuma.from_layout(layout, current, total_memory_kib, host_nodes)
        # The user's own <hugepages> and <allocation> stay: judge the definition about to be written.
        allocation = root.find("memoryBacking/allocation")
        immediate = allocation is not None and allocation.get("mode") == "immediate"
        check_preallocation(topology, binding_from_domain(target, name or "").cells, immediate)
        if stored is NOT_READ:
            try:
                stored = read_stored_spec(root)
            except VnumaError:
                # A stored spec that cannot be read is replaced by the one planned now (the caller chose to).
                stored = None
    except VnumaError as error:
        raise error.naming(name) from None
    return DomainPlan(name=name, spec=spec, layout=layout, current=current, target=target, stored=stored)


def _spec_text(spec: VnumaSpec) -> str:
    return " ".join(f"{key}={value}" for key, value in spec.to_mapping().items() if value is not None)


def render_plan(root: etree._Element, plan: DomainPlan) -> None:
    """Write ``plan`` into ``root`` in place: the owned parts, the spec and the record in ``<metadata>``.

    The record (``_xml.absent``) keeps the owned parts as they were before the collection first wrote
    them, and the user-changeable ones as written now, for ``state: absent`` to put back.
    """
    try:
        before = record_before_apply(root, plan.current)
        plan.target.apply(root)
        store_spec(root, plan.spec)
        if before is not None:
            record_after_apply(root, before)
    except VnumaError as error:
        raise error.naming(plan.name) from None


def serialize_like(root: etree._Element, original: str) -> str:
    """``root`` as text, keeping the original's prolog, epilog and quote style."""
    return _serialize(root, original)


def expand_domain(
    domain_xml: str,
    host: HostTopology | str | bytes,
    taken_cpus: Mapping[int, str] | None = None,
) -> ExpandResult:
    """Expand ``domain_xml`` for ``host`` (capabilities XML or a parsed topology).

    ``taken_cpus`` maps host CPUs dedicated to other guests to their names (for core/thread
    pinning).  Every error is from the collection's family and names the guest.
    """
    if not isinstance(domain_xml, str):
        raise XmlError(f"the domain XML must be text, got {type(domain_xml).__name__}")
    root = parse_xml(domain_xml, "domain XML", root_tag="domain")
    name = domain_name(root)
    try:
        spec = take_vnuma_element(root)
        source = "element"
        if spec is None:
            spec = read_stored_spec(root)
            source = "metadata"
        if spec is None:
            return ExpandResult(xml=domain_xml, layout=None, spec_source=None)
        plan = plan_domain(
            root, _host_topology(host), spec, taken_cpus, stored=spec if source == "metadata" else NOT_READ
        )
    except VnumaError as error:
        raise error.naming(name) from None
    if source == "metadata":
        unchanged = ExpandResult(xml=domain_xml, layout=plan.layout, spec_source=source, plan=plan)
        if not unchanged.changes:
            # Already expanded for this host: hand the document back as it came, byte for byte.
            return unchanged
    render_plan(root, plan)
    return ExpandResult(xml=_serialize(root, domain_xml), layout=plan.layout, spec_source=source, plan=plan)
