"""A rule-based CheXpert-style labeller: 14 observations per report, 1 / 0 / -1 / NaN.

It works the way the CheXpert labeller (Irvin et al. 2019) does, with regular expressions where
that labeller uses a dependency parse:

1. **Sentences.** The text is lower-cased. Sentences end at ".", "!" followed by a space, or at a
   blank line. A single newline is a space, because MIMIC reports wrap their lines. "4.2 cm" and
   "vs." do not end a sentence.
2. **Mentions.** Each observation has a synonym list (``_MENTIONS``): "enlarged heart" is
   Cardiomegaly, "PTX" is Pneumothorax, "pleural fluid" is Pleural Effusion, "ET tube" and
   "PICC" are Support Devices. Exclusions keep "pericardial effusion", "plate-like atelectasis",
   "septal lines" and "mass effect" out. Heart size and the mediastinum are *attributes*
   ("heart size", "cardiac silhouette", "mediastinal contours"). An attribute is labelled only
   through the nearest size word next to it: enlarged or widened gives 1, normal gives 0, and
   stable, unchanged, top-normal or borderline give -1. An attribute with no size word is not a
   mention, so "the heart and lungs" alone says nothing.
3. **Triggers and scope (NegEx-style).** Negation triggers ("no", "without", "resolution of",
   "resolved", "removed", "not seen", "no longer", ...) and uncertainty triggers ("possible",
   "may", "likely", "cannot exclude", "not ruled out", "suspicious for", ...) act forwards
   (pre) or backwards (post) within a clause. A clause ends at ";", ":", "but", "however",
   "although", "which", "except", "other than", "and the" / "and there", or at a comma that
   starts a new statement. Such a comma is followed by a size, change or laterality word, an
   article, or a trigger. So "no pneumothorax, effusion or consolidation" negates all three,
   and "no pneumothorax, small left effusion" negates only the pneumothorax. Post triggers never
   cross a comma. Pseudo-triggers are matched first and block the words inside them: "no
   change", "no interval change", "not only", "has not resolved", "partial resolution".
   "Cannot exclude" is therefore uncertain, not negated.
4. **A mention's label.** A mention in scope of a negation is 0. Otherwise a mention in scope of
   an uncertainty is -1, and so is a mention joined to another by "or" / "versus" ("atelectasis
   versus pneumonia"; "A, B, or C" with the comma before "or" joins the whole list). Any other
   mention is 1. Words of change do not negate: "unchanged cardiomegaly" and "stable small
   effusion" are positive, and "interval resolution of effusion" is negative.
5. **A report's label.** Per observation, the mentions combine as CheXpert's do: any positive
   gives 1, else any uncertain gives -1, else any negative gives 0, else NaN (not mentioned).
   No Finding is 1 when no other observation except Support Devices is 1 or -1. Otherwise it is
   NaN. An empty report is all NaN: it says nothing, not "no finding".

It labels whatever text it is given. Give it findings + impression: a MIMIC indication section
("r/o pneumonia") would count as an uncertain mention, as it would for CheXpert.

Clinical efficacy (:func:`clinical_efficacy`) uses the common report-generation convention
(R2Gen, CheXbert papers): label 1 is positive, and 0, -1 and NaN are all negative.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

OBSERVATIONS: tuple[str, ...] = (
    "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema",
    "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other",
    "Fracture", "Support Devices")

# -- mentions ---------------------------------------------------------------------------------

_LINE_KIND = (r"picc|central|central venous|venous|arterial|art|(?:internal )?jugular|ij|subclavian|femoral|"
              r"dialysis|hemodialysis|swan[- ]?ganz|pa|pulmonary artery|midline|groshong|hickman|catheter|port")
_LINE_VERB = r"tip|tips|terminat\w*|project\w*|course\w*|ends?|extend\w*|in (?:good )?position|in place"
_TUBE_KIND = (r"endotracheal|tracheostomy|trach|nasogastric|orogastric|enteric|feeding|chest|mediastinal|gastrostomy|"
              r"dobhoff|et|ng|og|pleural|drainage|thoracostomy")
_OPACITY = r"opacit(?:y|ies)"
_DENSITY = r"densit(?:y|ies)"

#: direct mentions per observation (regex alternatives, matched on whole words of lower-cased text)
_MENTIONS: dict[str, tuple[str, ...]] = {
    "Enlarged Cardiomediastinum": (
        r"widened mediastinum", r"mediastinal (?:widening|enlargement)",
        r"enlarged cardiomediastinal (?:silhouette|contours?)"),
    "Cardiomegaly": (
        r"cardiomegaly", r"cardiac enlargement", r"enlarged heart", r"enlargement of the (?:heart|cardiac silhouette)",
        r"cardiac hypertrophy", r"biventricular enlargement", r"(?:left|right) ventricular enlargement"),
    "Lung Opacity": (
        _OPACITY, r"opacification", r"opacified", _DENSITY, r"air[- ]?space (?:disease|process)",
        r"infiltrat(?:e|es|ion|ive)", r"ground[- ]glass", r"haziness", r"hazy",
        r"reticular (?:pattern|markings?|changes?)", r"reticulation", r"reticulonodular",
        r"interstitial (?:markings?|pattern|prominence|thickening|abnormalit(?:y|ies)|lung disease|disease|process|"
        r"changes?)",
        r"(?:parenchymal|pulmonary|lung) scarring", r"scarring", r"peribronchial (?:thickening|cuffing)",
        r"bronchial wall thickening"),
    "Lung Lesion": (
        r"nodules?", rf"nodular (?:{_OPACITY}|{_DENSITY}|lesions?)", r"nodularity", r"mass(?:es)?(?! effect)",
        r"tumou?rs?", r"neoplasms?", r"carcinoma", r"malignan(?:cy|cies|t)", r"metasta\w*", r"cancer", r"lump",
        r"(?:lung|pulmonary|parenchymal|cavitary|cavitating|spiculated|focal) lesions?"),
    "Edema": (
        r"(?<!soft tissue )edema", r"oedema", r"(?:pulmonary |vascular |venous )*congestion", r"chf",
        r"(?:congestive )?heart failure", r"(?:fluid|volume) overload", r"vascular engorgement", r"cephalization",
        r"kerley b?\s?lines", r"vascular (?:prominence|indistinctness)"),
    "Consolidation": (r"consolidat\w*",),
    "Pneumonia": (r"pneumonias?", r"bronchopneumonia", r"pneumonic", r"pna", r"infection", r"infectious(?: process)?"),
    "Atelectasis": (
        r"atelecta\w*", r"(?:lobe|lobar|lung|segmental|subsegmental) collapse",
        r"collapse of the (?:\w+ ){0,3}(?:lobe|lung)", r"collapsed (?:\w+ )?(?:lobe|lung)"),
    "Pneumothorax": (r"pneumothora(?:x|ces)", r"ptx", r"hydropneumothorax", r"pneumothoraxes"),
    "Pleural Effusion": (
        r"(?<!pericardial )(?<!joint )effusions?", r"pleural fluid", r"hydrothorax", r"hydropneumothorax",
        r"fluid in the (?:\w+ )?pleural space"),
    "Pleural Other": (
        r"pleural thickening", r"thickening of the pleura", r"pleural plaques?", r"pleural calcifications?",
        r"calcified pleural?", r"fibrothorax", r"pleural scar(?:ring)?",
        r"pleur(?:o-?|al-)parenchymal (?:scarring|scar|thickening)", r"apical (?:pleural )?cap(?:ping)?"),
    "Fracture": (r"fractures?", r"fractured", r"fx"),
    "Support Devices": (
        rf"(?:(?:{_TUBE_KIND}) )?tubes?", r"ett", r"ngt", r"ogt", r"endotracheal", r"tracheostomy", r"catheters?",
        r"picc", rf"(?:{_LINE_KIND}) lines?", rf"lines? (?:{_LINE_VERB})", r"(?:lines and tubes|tubes and lines)",
        r"port-?a-?cath", r"portacath", r"mediport", r"port", r"pacemaker", r"pacer", r"icd", r"aicd",
        r"defibrillator", r"(?:pacer|pacemaker|pacing|icd|cardiac|epicardial) (?:leads?|wires?|generator)",
        r"(?:ecg|ekg|monitoring|telemetry) (?:leads?|electrodes|wires|devices?)", r"electrodes", r"sternotomy",
        r"(?:sternal|sternotomy|surgical) (?:wires|sutures|cerclage)", r"cabg", r"(?:surgical|vascular) clips",
        r"stents?", r"(?:prosthetic|mechanical|bioprosthetic) valve", r"valve (?:replacement|prosthesis)", r"tavr",
        r"tavi", r"annuloplasty ring", r"(?:orthopedic |spinal |surgical )?hardware",
        r"(?:fixation|surgical|orthopedic|side|compression) plates?", r"screws", r"iabp",
        r"intra-?aortic balloon(?: pump)?", r"balloon pump", r"lvad", r"ventricular assist device", r"impella",
        r"ecmo", r"cannula(?:e|s)?", r"drains?", r"pigtail", r"(?:embolization )?coils", r"ivc filter",
        r"loop recorder", r"(?:support |monitoring |medical )?devices?", r"apparatus"),
}

#: attribute mentions: labelled through the size word next to them
_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "Cardiomegaly": (r"heart(?! failure)(?: size)?", r"cardiac (?:silhouette|size|contours?|shadow|outline|diameter)",
                     r"heart shadow"),
    "Enlarged Cardiomediastinum": (
        r"cardiomediastinal(?: and hilar)?(?: silhouettes?| contours?| shadow| outline| size| width)?", r"mediastinum",
        r"mediastinal (?:silhouette|contours?|width|configuration|shadow|outline|structures)"),
}

_POS_SIZE = (r"(?:mildly |moderately |markedly |severely |massively )?enlarg\w*", r"increased(?: in size)?", r"large",
             r"prominent", r"prominence", r"widen\w*", r"wide", r"globular", r"dilated")
_NEG_SIZE = (r"normal(?: in size)?", r"within normal limits", r"wnl", r"unremarkable", r"not enlarged")
_UNC_SIZE = (r"top[- ]normal", r"upper limits? of normal", r"upper normal", r"high normal", r"borderline(?: enlarged)?")
#: words of change: they make a size attribute uncertain only when no size word is next to it
_CHANGE_SIZE = (r"stable", r"unchanged", r"similar", r"grossly stable")

# -- triggers ---------------------------------------------------------------------------------

PSEUDO, UNC_PRE, UNC_POST = "pseudo", "unc_pre", "unc_post"
NEG_PRE, NEG_POST, NEG_BOTH = "neg_pre", "neg_post", "neg_both"
_FULLY = r"(?:entirely |completely |definitely |totally |fully |definitively )?"
_CANNOT = r"(?:cannot|can ?not|can't|could not|couldn't)"
_CLAUSE_END = r"(?=\s*(?:$|[,;:(]|(?:but|although|however|though|and|given|in|on|at|which)\b))"

#: (kind, regex alternatives). Pseudo-triggers win over uncertainty triggers, which win over negation
#: triggers, so the words inside "no change" or "cannot exclude" never negate.
_TRIGGERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (PSEUDO, (
        r"no (?:(?:significant|appreciable|substantial|definite|interval|further|major|marked|real)\s)*change",
        r"without (?:(?:significant|appreciable|interval)\s)*change", r"not (?:significantly )?changed",
        r"no (?:(?:significant|appreciable|interval|substantial)\s)*(?:increase|decrease|worsening|improvement)",
        r"not only", r"(?:has|have|had) not (?:yet )?(?:completely |fully |entirely )?resolved",
        r"not (?:yet )?(?:completely|fully|entirely) resolved", r"incomplete(?:ly)? resol\w+",
        r"partial(?:ly)? resol\w+", r"not resolved", r"gram[- ]negative",
        r"no (?:new )?(?:acute )?(?:osseous|bony) (?:abnormality|abnormalities)")),
    (UNC_PRE, (
        r"possible", r"possibly", r"probable", r"probably", r"(?:most |more )?likely", r"may", r"might", r"could",
        r"perhaps", r"presumabl[ey]", r"presumed", r"suspect(?:ed)?", r"suspicious (?:for|of)",
        r"suspicion (?:for|of)", r"concern(?:ing|s)? (?:for|of)", r"worrisome for", r"questionabl[ey]",
        r"question of", r"questioned", r"suggest(?:s|ing|ive of|ion of)?",
        rf"(?:{_CANNOT}|difficult to|unable to) {_FULLY}(?:exclude|rule out)", r"r/o", r"rule out", r"to exclude",
        r"evaluate for", r"(?:evaluation|assessment|assess) for",
        r"differential(?: diagnosis)?(?: includes?| considerations? includes?)?", r"equivocal", r"indeterminate",
        r"uncertain", r"unclear (?:if|whether)", r"borderline")),
    (UNC_POST, (
        rf"{_CANNOT} (?:be )?{_FULLY}(?:excluded|ruled out)",
        rf"(?:is |are |was )?not (?:be )?{_FULLY}(?:excluded|ruled out)",
        r"(?:is|are|was) (?:also )?(?:possible|probable|likely|suspected|questioned|a consideration|considered|"
        rf"equivocal|questionable|suggested|not excluded){_CLAUSE_END}",
        r"(?:may|might|could) (?:also )?be (?:present|seen|developing|forming)",
        r"(?:cannot|can ?not) be (?:assessed|evaluated)", r"not (?:well )?(?:assessed|evaluated)",
        r"(?:is |are )?(?:difficult|hard) to (?:exclude|rule out)",
        r"in the (?:appropriate|right|proper) clinical (?:setting|context)")),
    (NEG_BOTH, (r"no longer", r"resolved", r"unlikely")),
    (NEG_PRE, (
        r"unlikely to (?:represent|reflect|be)", r"no", r"not", r"without", r"w/o", r"negative for", r"free of",
        r"clear of", r"absence of", r"(?:interval |near[- ]complete |complete )?resolution of",
        r"(?:interval )?removal of", r"clearing of", r"nor", r"neither", r"never", r"none")),
    (NEG_POST, (
        r"(?:is |are |was |were )?absent",
        r"(?:has |have )?(?:since |now |completely |entirely )?(?:cleared|disappeared|gone)",
        r"(?:has |have )?(?:since |now )?been removed", r"removed", r"ruled out", r"(?:is|are) negative",
        r"(?:is |are |was |were )?not (?:clearly |definitely |well |readily )?(?:seen|identified|appreciated|"
        r"visuali[sz]ed|evident|demonstrated|present|detected|noted|apparent|visible)")),
)

#: clause boundaries for every trigger (and ";", ":")
_TERMINATORS = (r"but", r"however", r"although", r"though", r"except", r"aside from", r"apart from",
                r"besides", r"which", r"whereas", r"while", r"yet", r"otherwise", r"nevertheless", r"other than",
                r"with the exception of", r"and there")
#: a comma followed by one of these starts a new statement (a comma before a trigger does too)
_COMMA_CUES = (r"small", r"large", r"moderate", r"mild", r"minimal", r"trace", r"tiny", r"severe", r"massive",
               r"extensive", r"marked", r"subtle", r"faint", r"new", r"increas\w*", r"decreas\w*", r"persist\w*",
               r"stable", r"unchanged", r"improv\w*", r"worse\w*", r"residual", r"again", r"redemonstrat\w*", r"left",
               r"right", r"bilateral\w*", r"bibasilar", r"basilar", r"the", r"there", r"a", r"an", r"this", r"these",
               r"it", r"is", r"are", r"with", r"consistent", r"compatible", r"\d+")

#: gap between two mentions that makes both uncertain ("atelectasis or pneumonia", "vs")
_OR_GAP = re.compile(r"^\s*(,\s*)?(?:or|and/or|versus|vs\.?)\s+(?:\w+\s+){0,3}$")
_COMMA_GAP = re.compile(r"^\s*,\s*(?:\w+\s+){0,3}$")


def _words(alts: tuple[str, ...]) -> str:
    """Alternatives matched as whole words (a hyphen joins words: "plate-like" is one)."""
    return r"(?<![\w-])(?:" + "|".join(alts) + r")(?![\w-])"


def _alternation(alts: tuple[str, ...]) -> re.Pattern:
    return re.compile(_words(alts))


_MENTION_RE = {obs: _alternation(alts) for obs, alts in _MENTIONS.items()}
_ATTRIBUTE_RE = {obs: _alternation(alts) for obs, alts in _ATTRIBUTES.items()}
_SIZE_RE = [(1.0, _alternation(_POS_SIZE)), (0.0, _alternation(_NEG_SIZE)), (-1.0, _alternation(_UNC_SIZE))]
_CHANGE_RE = _alternation(_CHANGE_SIZE)
#: question marks: "?pneumonia" hedges what follows, "effusion?" what precedes
_QUESTION = {UNC_PRE: r"(?<!\w)\?(?=\s?\w)", UNC_POST: r"(?<=\w)\?"}
_TRIGGER_RE = [(kind, re.compile(_words(alts) + (f"|{_QUESTION[kind]}" if kind in _QUESTION else "")))
               for kind, alts in _TRIGGERS]
_TERMINATOR_RE = re.compile(_words(_TERMINATORS) + r"|[;:]")
_COMMA_CUE_RE = re.compile(r",\s*(?:" + "|".join(_COMMA_CUES) + r")(?![\w-])")
_RANK = {PSEUDO: 0, UNC_PRE: 1, UNC_POST: 1, NEG_BOTH: 2, NEG_PRE: 2, NEG_POST: 2}
_SENTENCE_END = re.compile(r"(?<!\bvs)(?<!\bapprox)(?<!\be\.g)(?<!\bi\.e)(?<!\bdr)[.!](?=\s|$)|(?<=\w\?)\s+")


@dataclass(frozen=True)
class _Span:
    start: int
    end: int
    kind: str  # an observation for mentions, a trigger kind for triggers


def sentences(text: str) -> list[str]:
    """Lower-cased sentences (a single newline is a space: MIMIC wraps its lines)."""
    text = re.sub(r"\n\s*\n", " . ", str(text).lower())
    text = re.sub(r"\s+", " ", text)
    return [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]


def _triggers(s: str) -> tuple[list[_Span], list[_Span]]:
    """Non-overlapping triggers: pseudo first, then uncertainty, then negation; longest first.

    Returns the active triggers and every span taken (pseudo-triggers included)."""
    cands = [(_RANK[kind], -(m.end() - m.start()), m.start(), m.end(), kind)
             for kind, rx in _TRIGGER_RE for m in rx.finditer(s)]
    taken: list[_Span] = []
    for _r, _l, a, b, kind in sorted(cands):
        if all(b <= t.start or a >= t.end for t in taken):
            taken.append(_Span(a, b, kind))
    return sorted((t for t in taken if t.kind != PSEUDO), key=lambda t: t.start), taken


def _barriers(s: str, triggers: list[_Span], occupied: list[_Span]) -> tuple[list[int], list[int]]:
    """Positions where every scope ends, and (for post triggers) every comma."""
    inside = lambda p: any(t.start <= p < t.end for t in occupied)  # noqa: E731
    hard = [m.start() for m in _TERMINATOR_RE.finditer(s) if not inside(m.start())]
    hard += [m.start() for m in _COMMA_CUE_RE.finditer(s)]
    starts = {t.start for t in triggers}
    for m in re.finditer(r",\s*", s):
        if m.end() in starts:
            hard.append(m.start())
    commas = [m.start() for m in re.finditer(",", s)]
    return sorted(set(hard)), commas


def _between(points: list[int], a: int, b: int) -> bool:
    return any(a <= p < b for p in points)


def _mentions(s: str) -> tuple[list[_Span], list[_Span]]:
    direct = [_Span(m.start(), m.end(), obs) for obs, rx in _MENTION_RE.items() for m in rx.finditer(s)]
    attrs = [_Span(m.start(), m.end(), obs) for obs, rx in _ATTRIBUTE_RE.items() for m in rx.finditer(s)
             if not any(d.start < m.end() and m.start() < d.end for d in direct)]
    return direct, attrs


def _size_label(s: str, attr: _Span, direct: list[_Span], hard: list[int]) -> tuple[float, _Span] | None:
    """The size word nearest to an attribute mention, within its clause and not past another finding.

    Size words (enlarged, normal, top-normal) win over words of change (stable, unchanged):
    "mildly enlarged heart, unchanged" is positive, "heart size is stable" uncertain.
    """
    lo = max([p + 1 for p in hard if p < attr.start] + [d.end for d in direct if d.end <= attr.start] + [0])
    hi = min([p for p in hard if p >= attr.end] + [d.start for d in direct if d.start >= attr.end] + [len(s)])
    for group in (_SIZE_RE, [(-1.0, _CHANGE_RE)]):
        best = None
        for value, rx in group:
            for m in rx.finditer(s, lo, hi):
                dist = attr.start - m.end() if m.end() <= attr.start else m.start() - attr.end
                if dist >= 0 and (best is None or dist < best[0]):
                    best = (dist, value, _Span(m.start(), m.end(), "size"))
        if best is not None:
            return best[1], best[2]
    return None


def _in_scope(span: _Span, triggers: list[_Span], kinds: tuple[str, str, str], hard: list[int],
              commas: list[int]) -> bool:
    """Whether a trigger of ``kinds`` (pre, post, both directions) reaches ``span`` within its clause."""
    pre, post, both = kinds
    for t in triggers:
        if t.kind == pre and t.end <= span.start and not _between(hard, t.end, span.start):
            return True
        if t.kind == both and t.end <= span.start and not _between(hard + commas, t.end, span.start):
            return True
        if t.kind in (post, both) and t.start >= span.end and not _between(hard + commas, span.end, t.start):
            return True
    return False


def _or_joined(s: str, mentions: list[_Span]) -> set[int]:
    """Indices of mentions joined by "or"/"versus" (both uncertain); ", or" extends back over a comma list."""
    out: set[int] = set()
    order = sorted(range(len(mentions)), key=lambda i: mentions[i].start)
    for k in range(1, len(order)):
        a, b = mentions[order[k - 1]], mentions[order[k]]
        if a.end > b.start:
            continue
        gap = _OR_GAP.match(s[a.end:b.start])
        if gap:
            out.update((order[k - 1], order[k]))
            j = k - 1
            while gap.group(1) and j > 0 and _COMMA_GAP.match(s[mentions[order[j - 1]].end:mentions[order[j]].start]):
                out.add(order[j - 1])
                j -= 1
    return out


def sentence_mentions(sentence: str) -> list[tuple[str, float]]:
    """(observation, label) for every mention in one lower-cased sentence."""
    s = sentence
    triggers, occupied = _triggers(s)
    hard, commas = _barriers(s, triggers, occupied)
    direct, attrs = _mentions(s)
    # (spans that carry the mention, the size word's label for an attribute)
    items: list[tuple[list[_Span], float | None]] = [([m], None) for m in direct]
    for a in attrs:
        size = _size_label(s, a, direct, hard)
        if size is not None:
            items.append(([a, size[1]], size[0]))
    joined = _or_joined(s, [sp[0] for sp, _ in items])
    out: list[tuple[str, float]] = []
    for i, (sp, size) in enumerate(items):
        if size is not None and size != 1.0:
            out.append((sp[0].kind, size))  # "normal" -> 0, "stable"/"top normal" -> -1, whatever surrounds them
            continue
        neg = any(_in_scope(x, triggers, (NEG_PRE, NEG_POST, NEG_BOTH), hard, commas) for x in sp)
        unc = i in joined or any(_in_scope(x, triggers, (UNC_PRE, UNC_POST, ""), hard, commas) for x in sp)
        out.append((sp[0].kind, 0.0 if neg else -1.0 if unc else 1.0))
    return out


def _combine(labels: list[float]) -> float:
    """CheXpert's aggregation of a report's mentions: positive > uncertain > negative > absent."""
    for v in (1.0, -1.0, 0.0):
        if v in labels:
            return v
    return float("nan")


def label_report(text: str) -> dict[str, float]:
    """Observation -> 1 (positive), 0 (negated), -1 (uncertain) or NaN (not mentioned)."""
    found: dict[str, list[float]] = {obs: [] for obs in OBSERVATIONS}
    for sent in sentences(text):
        for obs, lab in sentence_mentions(sent):
            found[obs].append(lab)
    out = {obs: _combine(v) for obs, v in found.items()}
    findings = [out[o] for o in OBSERVATIONS if o not in ("No Finding", "Support Devices")]
    said_something = any(sentences(text))
    out["No Finding"] = 1.0 if said_something and not any(v in (1.0, -1.0) for v in findings) else float("nan")
    return out


def label_reports(texts) -> np.ndarray:
    """[N, 14] float array in :data:`OBSERVATIONS` order (NaN = not mentioned)."""
    rows = [label_report(t) for t in texts]
    out = np.array([[r[o] for o in OBSERVATIONS] for r in rows], dtype=np.float64)
    return out.reshape(len(rows), len(OBSERVATIONS))


# -- clinical efficacy --------------------------------------------------------------------------

def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.full(np.shape(num), np.nan), where=np.asarray(den) > 0)


def ce_scores(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> dict[str, float]:
    """Clinical-efficacy scores from per-report [N, 14] TP/FP/FN indicators (resample rows to bootstrap).

    * ``example_*``: per-report precision, recall and F1 averaged over reports. A report where
      neither side has a positive agrees perfectly (1, 1, 1); otherwise 0/0 counts as 0.
    * ``macro_f1``: mean over observations of each observation's F1 over reports. An observation
      positive in no report on either side has no F1 (``f1/<obs>`` is NaN) and is left out.
    * ``micro_*``: pooled over every (report, observation) decision.
    """
    tp, fp, fn = (np.asarray(a, dtype=np.float64) for a in (tp, fp, fn))
    if tp.shape[0] == 0:
        return {k: float("nan") for k in ("example_precision", "example_recall", "example_f1", "macro_f1",
                                          "micro_precision", "micro_recall", "micro_f1")} | \
            {f"f1/{o}": float("nan") for o in OBSERVATIONS}
    t, p, n = tp.sum(1), fp.sum(1), fn.sum(1)
    empty = (t + p + n) == 0
    prec = np.where(empty, 1.0, np.nan_to_num(_ratio(t, t + p)))
    rec = np.where(empty, 1.0, np.nan_to_num(_ratio(t, t + n)))
    f1 = np.where(empty, 1.0, np.nan_to_num(_ratio(2 * t, 2 * t + p + n)))
    per_obs = _ratio(2 * tp.sum(0), 2 * tp.sum(0) + fp.sum(0) + fn.sum(0))
    T, P, N = tp.sum(), fp.sum(), fn.sum()
    out = {"example_precision": float(prec.mean()), "example_recall": float(rec.mean()), "example_f1": float(f1.mean()),
           "macro_f1": float(np.nanmean(per_obs)) if np.isfinite(per_obs).any() else float("nan"),
           "micro_precision": float(_ratio(T, T + P)), "micro_recall": float(_ratio(T, T + N)),
           "micro_f1": float(_ratio(2 * T, 2 * T + P + N))}
    out.update({f"f1/{o}": float(v) for o, v in zip(OBSERVATIONS, per_obs)})
    return out


def clinical_efficacy(generated: list[str], references: list[str]) -> dict:
    """CE of generated reports against their references, labelled by :func:`label_reports`.

    Positive means label 1; 0, -1 and NaN are negative (the common CE convention). Returns
    :func:`ce_scores`'s floats plus ``per_sample``: ``{"tp", "fp", "fn"}`` int8 arrays [N, 14]
    in :data:`OBSERVATIONS` order, and ``labels`` (the observation names).
    """
    if len(generated) != len(references):
        from xrbench.errors import DataError

        raise DataError(f"clinical efficacy needs one reference per generated report, got {len(generated)} "
                        f"generated and {len(references)} references")
    g, r = label_reports(generated) == 1, label_reports(references) == 1
    per = {"tp": (g & r).astype(np.int8), "fp": (g & ~r).astype(np.int8), "fn": (~g & r).astype(np.int8)}
    return {**ce_scores(per["tp"], per["fp"], per["fn"]), "per_sample": per, "labels": list(OBSERVATIONS)}
