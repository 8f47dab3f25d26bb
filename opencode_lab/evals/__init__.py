"""Evaluation: scorers, LLM judges, pairwise battles, grading and ratings."""
