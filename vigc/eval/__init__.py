"""Metrics: VQA accuracy, object hallucination on COCO (CHAIR, POPE) and generated-data quality."""

from vigc.eval.vqa import VQAScore, normalize_answer, strip_answer_prefix, vqa_accuracy, vqa_accuracy_mean

__all__ = ["VQAScore", "normalize_answer", "strip_answer_prefix", "vqa_accuracy", "vqa_accuracy_mean"]
