"""The pure domain: the policy, the negotiation engine, circumstances, the rules
of conduct and the vocabulary every layer shares. Imports nothing of the other
layers and does no I/O beyond reading the policy file."""
