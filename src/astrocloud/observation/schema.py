"""An instrument's back-end schema: the parameters an observer may set (modes, filters,
gratings, binning, readout …) and the overheads they cost, in a small JSON-schema-like form
that a telescope manager writes and from which the proposal form is generated.

    {"parameters": {
        "mode": {"type": "choice", "choices": ["imaging", "spectroscopy"], "required": true},
        "filter":  {"type": "choice", "choices": ["B", "V", "R"], "only_if": {"mode": ["imaging"]},
                    "overhead_s": {"*": 20}},
        "grating": {"type": "choice", "choices": ["G4", "G8"],
                    "only_if": {"mode": ["spectroscopy"]}},
        "binning": {"type": "choice", "choices": ["1x1", "2x2"], "default": "1x1"},
        "readout": {"type": "choice", "choices": ["fast", "slow"], "default": "fast",
                    "overhead_s": {"fast": 10, "slow": 45}},
        "slit_arcsec": {"type": "number", "minimum": 0.5, "maximum": 5}},
     "overheads": {"per_target_s": 300, "per_exposure_s": 5}}

Parameter types: choice, number, integer, string. `only_if` makes a parameter apply only when
others have one of the given values; `overhead_s` adds seconds per exposure for a value (`*`:
any value). Every problem is reported at once, as `{field, message}` items for a 422.
"""

from __future__ import annotations

import math
from typing import Any

TYPES = ("choice", "number", "integer", "string")
PARAMETER_KEYS = {"type", "choices", "minimum", "maximum", "required", "default", "label",
                  "only_if", "overhead_s", "max_length"}
OVERHEAD_KEYS = {"per_target_s", "per_exposure_s"}
MAX_PARAMETERS = 40
MAX_CHOICES = 200


def _is_number(value: Any) -> bool:
    """A finite number of a sensible size (not a boolean, not a 400-digit integer)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    return abs(value) < 1e15 and math.isfinite(value)


def schema_problems(schema: Any) -> list[dict[str, str]]:
    """Everything wrong with an instrument schema (an empty list when it is sound)."""
    if not isinstance(schema, dict):
        return [{"field": "setup_schema", "message": "The schema must be an object."}]
    problems: list[dict[str, str]] = []
    for key in schema:
        if key not in ("parameters", "overheads"):
            problems.append({"field": f"setup_schema.{key}"[:120],
                             "message": "Unknown key: use “parameters” and “overheads”."})
    params = schema.get("parameters", {})
    if not isinstance(params, dict):
        problems.append({"field": "setup_schema.parameters",
                         "message": "“parameters” must be an object of name: definition."})
        params = {}
    if len(params) > MAX_PARAMETERS:
        problems.append({"field": "setup_schema.parameters",
                         "message": f"At most {MAX_PARAMETERS} parameters."})
    for name, spec in params.items():
        where = f"setup_schema.parameters.{name}"[:120]
        if not isinstance(name, str) or not name.replace("_", "").isalnum() or len(name) > 40:
            problems.append({"field": where, "message": "A parameter name is up to 40 letters, "
                                                        "digits or underscores."})
        if not isinstance(spec, dict):
            problems.append({"field": where, "message": "A parameter is an object."})
            continue
        for key in spec:
            if key not in PARAMETER_KEYS:
                problems.append({"field": f"{where}.{key}"[:120],
                                 "message": "Unknown key (known: "
                                            f"{', '.join(sorted(PARAMETER_KEYS))})."})
        kind = spec.get("type")
        if kind not in TYPES:
            problems.append({"field": f"{where}.type",
                             "message": f"The type must be one of {', '.join(TYPES)}."})
        choices = spec.get("choices")
        if kind == "choice" and (
                not isinstance(choices, list) or not choices or len(choices) > MAX_CHOICES
                or not all(isinstance(c, str | int | float) and not isinstance(c, bool)
                           for c in choices)):
            problems.append({"field": f"{where}.choices",
                             "message": "A choice needs a non-empty list of values."})
        for bound in ("minimum", "maximum"):
            if bound in spec and not _is_number(spec[bound]):
                problems.append({"field": f"{where}.{bound}", "message": "Must be a number."})
        if (_is_number(spec.get("minimum")) and _is_number(spec.get("maximum"))
                and spec["minimum"] > spec["maximum"]):
            problems.append({"field": where, "message": "The minimum exceeds the maximum."})
        only_if = spec.get("only_if", {})
        if not isinstance(only_if, dict) or not all(
                k in params and isinstance(v, list) for k, v in only_if.items()):
            problems.append({"field": f"{where}.only_if", "message": "“only_if” maps other "
                             "parameters to lists of values."})
        overhead = spec.get("overhead_s", {})
        if not isinstance(overhead, dict) or not all(
                _is_number(v) and 0 <= v <= 86400 for v in overhead.values()):
            problems.append({"field": f"{where}.overhead_s", "message": "“overhead_s” maps "
                             "values (or “*”) to seconds between 0 and 86400."})
        if "default" in spec and kind in TYPES:
            problems += [{"field": f"{where}.default", "message": p["message"]}
                         for p in _value_problems(name, spec, spec["default"])]
    overheads = schema.get("overheads", {})
    if not isinstance(overheads, dict):
        problems.append({"field": "setup_schema.overheads", "message": "Must be an object."})
        overheads = {}
    for key, value in overheads.items():
        if key not in OVERHEAD_KEYS:
            problems.append({"field": f"setup_schema.overheads.{key}"[:120],
                             "message": "Unknown overhead (known: "
                                        f"{', '.join(sorted(OVERHEAD_KEYS))})."})
        elif not _is_number(value) or not 0 <= value <= 86400:
            problems.append({"field": f"setup_schema.overheads.{key}",
                             "message": "An overhead is a number of seconds, 0 to 86400."})
    return problems


def _value_problems(name: str, spec: dict, value: Any) -> list[dict[str, str]]:
    kind = spec.get("type")
    if kind == "choice":
        if value not in spec.get("choices", []):
            return [{"field": name, "message": f"“{str(value)[:40]}” is not one of "
                     f"{', '.join(str(c) for c in spec.get('choices', []))}."}]
    elif kind in ("number", "integer"):
        if not _is_number(value) or (kind == "integer" and not float(value).is_integer()):
            what = "an integer" if kind == "integer" else "a number"
            return [{"field": name, "message": f"Must be {what}."}]
        if "minimum" in spec and value < spec["minimum"]:
            return [{"field": name, "message": f"Must be at least {spec['minimum']}."}]
        if "maximum" in spec and value > spec["maximum"]:
            return [{"field": name, "message": f"Must be at most {spec['maximum']}."}]
    elif kind == "string" and (not isinstance(value, str)
                               or len(value) > int(spec.get("max_length", 200))):
        return [{"field": name, "message": "Must be a short text."}]
    return []


def _applies(spec: dict, setup: dict) -> bool:
    return all(setup.get(other) in values for other, values in spec.get("only_if", {}).items())


def setup_problems(schema: dict, setup: Any, where: str = "setup") -> list[dict[str, str]]:
    """Everything wrong with an instrument set-up (parameter values) under `schema`: unknown
    parameters, values outside their choices or bounds, required ones missing."""
    if not isinstance(setup, dict):
        return [{"field": where, "message": "The set-up must be an object of parameter: value."}]
    params = (schema or {}).get("parameters", {})
    problems = []
    for name in setup:
        if name not in params:
            known = ", ".join(params) or "none"
            problems.append({"field": f"{where}.{name}"[:120],
                             "message": f"Not a parameter of this instrument (known: {known})."})
    filled = {**{n: s["default"] for n, s in params.items() if "default" in s}, **setup}
    for name, spec in params.items():
        applies = _applies(spec, filled)
        if name in setup:
            if not applies:
                problems.append({"field": f"{where}.{name}", "message": "Does not apply with "
                                 "the other settings chosen."})
                continue
            problems += [{"field": f"{where}.{name}", "message": p["message"]}
                         for p in _value_problems(name, spec, setup[name])]
        elif applies and spec.get("required") and "default" not in spec:
            problems.append({"field": f"{where}.{name}", "message": "Required."})
    return problems


def exposure_seconds(schema: dict, setup: dict, seconds: float, count: int) -> float:
    """The time an exposure block costs: its exposures plus the per-exposure overheads of the
    chosen values (readout, filter change …)."""
    params = (schema or {}).get("parameters", {})
    filled = {**{n: s["default"] for n, s in params.items() if "default" in s}, **(setup or {})}
    per_exposure = float((schema or {}).get("overheads", {}).get("per_exposure_s", 0))
    for name, spec in params.items():
        overhead = spec.get("overhead_s") or {}
        if name in filled and _applies(spec, filled):
            value = str(filled[name])
            per_exposure += float(overhead.get(value, overhead.get("*", 0)))
    return count * (seconds + per_exposure)


def target_overhead_seconds(schema: dict) -> float:
    """The acquisition overhead each target costs on this instrument."""
    return float((schema or {}).get("overheads", {}).get("per_target_s", 0))
