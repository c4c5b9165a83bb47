"""Report text: a rule-based CheXpert-style labeller and clinical-efficacy scores."""
from xrbench.text.labeller import OBSERVATIONS, ce_scores, clinical_efficacy, label_report, label_reports

__all__ = ["OBSERVATIONS", "ce_scores", "clinical_efficacy", "label_report", "label_reports"]
