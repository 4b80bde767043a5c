"""Chinese NLU components: text normalisation and rule-based quantity extraction."""
