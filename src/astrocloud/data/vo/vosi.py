"""VOSI documents every VO service publishes: its capabilities and its availability."""

from __future__ import annotations

from lxml import etree
from starlette.responses import Response

VOSI_CAP = "http://www.ivoa.net/xml/VOSICapabilities/v1.0"
VR = "http://www.ivoa.net/xml/VOResource/v1.0"
VS = "http://www.ivoa.net/xml/VODataService/v1.1"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
AVAIL = "http://www.ivoa.net/xml/VOSIAvailability/v1.0"


def _xml(root) -> Response:
    return Response(etree.tostring(root, xml_declaration=True, encoding="UTF-8"),
                    media_type="text/xml")


def capability_elements(base: str, standard: tuple[str, str], *,
                        capability_type: str | None = None, details=None,
                        extra: list[tuple[str, str]] = ()) -> list:
    """The `capability` elements of a service at `base`: its standard capability
    (standardID, the access URL of its std interface), then the VOSI capabilities and
    availability. `capability_type` (e.g. "cs:ConeSearch") and `details(element)` add what a
    standard's capability schema says. The elements are unqualified, as VOSI and VOResource
    have them; the document they go in declares the prefixes their xsi:type values use (vs,
    and the standard's own). `extra` lists further (standardID, URL) capabilities."""
    entries = [(standard[0], standard[1], True),
               ("ivo://ivoa.net/std/VOSI#capabilities", f"{base}/capabilities", False),
               ("ivo://ivoa.net/std/VOSI#availability", f"{base}/availability", False),
               *((standard_id, url, False) for standard_id, url in extra)]
    out = []
    for standard_id, url, std in entries:
        capability = etree.Element("capability", standardID=standard_id)
        if std and capability_type:
            capability.set(f"{{{XSI}}}type", capability_type)
        interface = etree.SubElement(capability, "interface")
        interface.set(f"{{{XSI}}}type", "vs:ParamHTTP")
        if std:
            interface.set("role", "std")
        etree.SubElement(interface, "accessURL", use="base" if std else "full").text = url
        if std and details is not None:
            details(capability)
        out.append(capability)
    return out


def capabilities(base: str, standard: tuple[str, str], *, extra_ns: dict | None = None,
                 capability_type: str | None = None, details=None,
                 extra: list[tuple[str, str]] = ()) -> Response:
    """The VOSI capabilities document of a service at `base` (see `capability_elements`;
    `extra_ns` declares the standard's prefix)."""
    root = etree.Element(f"{{{VOSI_CAP}}}capabilities",
                         nsmap={"vosi": VOSI_CAP, "vr": VR, "vs": VS, "xsi": XSI,
                                **(extra_ns or {})})
    root.extend(capability_elements(base, standard, capability_type=capability_type,
                                    details=details, extra=extra))
    return _xml(root)


def availability() -> Response:
    root = etree.Element(f"{{{AVAIL}}}availability", nsmap={"avail": AVAIL})
    etree.SubElement(root, f"{{{AVAIL}}}available").text = "true"
    return _xml(root)
