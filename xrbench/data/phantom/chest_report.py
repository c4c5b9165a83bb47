"""Templated radiology reports for the synthetic chest phantom (findings + impression).

Synthetic text only. Every present finding is described with the laterality, zone and size words
that match what was drawn; findings absent from the image are negated ("No pneumothorax."), and
hedged findings are worded "Possible ..." / "Cannot exclude ..." so that a rule-based labeller
recovers positive / negative / uncertain. Phrasing varies between equivalent templates.
"""
from __future__ import annotations

import numpy as np

from xrbench.data.phantom.chest_findings import Spec

_RIB = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth", "eleventh")


def _where(spec: Spec) -> str:
    side = "both lungs" if spec.side == "bilateral" else f"the {spec.side} lung"
    return f"the {spec.zone} zone of {side}" if spec.zone else side


def _grade(v: float) -> str:
    return "mild" if v < 0.34 else "moderate" if v < 0.67 else "severe"


def _phrase(name: str, spec: Spec | None, rng: np.random.Generator) -> str:
    """A noun phrase for a finding (``spec`` None: a hypothetical, for hedged absent findings)."""
    d = spec.detail if spec else {}
    side = spec.side if spec else str(rng.choice(["right", "left"]))
    both = side == "bilateral"
    if name == "Pleural Effusion":
        size = d.get("size", "small")
        return f"{size} bilateral pleural effusions" if both else f"{size} {side} pleural effusion"
    if name == "Pneumothorax":
        return f"{d.get('size', 'small')} {side} pneumothorax"
    if name == "Cardiomegaly":
        return f"{_grade(spec.severity) if spec else 'mild'} cardiomegaly"
    if name == "Enlarged Cardiomediastinum":
        return "enlarged cardiomediastinal silhouette"
    if name == "Aortic Enlargement":
        return "enlarged and tortuous aorta"
    if name == "Edema":
        return f"{d.get('size', 'mild')} pulmonary edema with perihilar haziness and septal lines"
    if name == "Emphysema":
        return f"hyperinflated lungs with flattened hemidiaphragms consistent with {d.get('size', 'mild')} emphysema"
    if name == "Fibrosis":
        return "reticular opacities at both lung bases consistent with pulmonary fibrosis"
    where = _where(spec) if spec else f"the {side} lung"
    if name == "Consolidation":
        return f"consolidation in {where} with air bronchograms"
    if name == "Pneumonia":
        return f"patchy airspace opacity in {where} consistent with pneumonia"
    if name == "Lung Opacity":
        return f"hazy ground-glass opacity in {where}"
    if name == "Infiltration":
        return f"ill-defined infiltrate in {where}"
    if name == "Atelectasis":
        kind = d.get("kind", "plate-like")
        base = "both lung bases" if both else f"the {side} lung base"
        return f"{kind} atelectasis at {base}"
    if name == "Nodule":
        n = d.get("count", 1)
        return (f"a {d.get('size_mm', 8)} mm pulmonary nodule in {where}" if n == 1 else
                f"{n} pulmonary nodules, the largest {d.get('size_mm', 8)} mm in {where}")
    if name == "Mass":
        return f"a {d.get('size_mm', 40) / 10:.1f} cm mass in {where}"
    if name == "Calcification":
        n = d.get("count", 1)
        return "a calcified granuloma" if n == 1 else f"{n} calcified granulomas"
    if name == "Pleural Thickening":
        where = "apical" if d.get("where") == "apical" else "lateral"
        return f"{where} pleural thickening on {'both sides' if both else 'the ' + side}"
    if name == "Pleural Other":
        return f"calcified pleural plaques on {'both sides' if both else 'the ' + side}"
    if name == "Fracture":
        return f"fracture of the {side} {_RIB[d.get('rib', 5) + 1]} rib" if d else f"{side} rib fracture"
    if name == "Hernia":
        return "retrocardiac air-fluid level consistent with a hiatal hernia"
    if name == "Support Devices":
        devices = d.get("devices", ["central venous catheter"])
        return "support devices: " + ", ".join(devices) if len(devices) > 1 else devices[0]
    raise KeyError(name)


def _sentence(text: str) -> str:
    return text[0].upper() + text[1:] + "."


_NEGATIONS = {
    "Pneumothorax": ("No pneumothorax.", "There is no pneumothorax."),
    "Pleural Effusion": ("No pleural effusion.", "No pleural effusions.", "The costophrenic angles are sharp, no pleural effusion."),
    "Consolidation": ("No focal consolidation.", "No consolidation."),
    "Edema": ("No pulmonary edema.", "No evidence of pulmonary edema."),
    "Cardiomegaly": ("Heart size is normal, no cardiomegaly.", "No cardiomegaly."),
    "Fracture": ("No acute rib fracture.",),
}

#: sentence order by region, as radiologists dictate
_ORDER = ("Support Devices", "Cardiomegaly", "Enlarged Cardiomediastinum", "Aortic Enlargement", "Hernia",
          "Edema", "Consolidation", "Pneumonia", "Lung Opacity", "Infiltration", "Atelectasis", "Nodule", "Mass",
          "Calcification", "Emphysema", "Fibrosis", "Pleural Effusion", "Pneumothorax", "Pleural Thickening",
          "Pleural Other", "Fracture")


def write_report(specs: dict[str, Spec], findings: dict[str, float], uncertain: frozenset[str], view: str,
                 rng: np.random.Generator) -> dict[str, str]:
    """``{"findings": ..., "impression": ...}`` for one image."""
    technique = str(rng.choice([f"{view} view of the chest.", f"Single frontal {view} radiograph of the chest.",
                                "Portable AP chest radiograph." if view == "AP" else "PA chest radiograph."]))
    body, impression = [technique], []
    for name in _ORDER:
        spec = specs.get(name)
        if spec is not None and name not in uncertain:
            text = _phrase(name, spec, rng)
            body.append(_sentence(text if name != "Cardiomegaly" else f"the heart is enlarged ({text})"))
            impression.append(_sentence(text))
        elif name in uncertain and (spec is not None or name not in findings):
            text = _phrase(name, spec, rng)
            hedge = _sentence(str(rng.choice(["possible ", "cannot exclude "])) + text)
            body.append(hedge)
            impression.append(hedge)
        elif name in _NEGATIONS and (name != "Consolidation" or not {"Pneumonia", "Lung Opacity"} & set(findings)):
            body.append(str(rng.choice(_NEGATIONS[name])))
    if not impression:
        impression = [str(rng.choice(["No acute cardiopulmonary process.", "No acute cardiopulmonary abnormality.",
                                      "Normal chest radiograph."]))]
    elif len(impression) > 1:
        impression = [f"{i + 1}. {s}" for i, s in enumerate(impression)]
    return {"findings": " ".join(body), "impression": " ".join(impression)}
