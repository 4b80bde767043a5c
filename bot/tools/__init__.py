"""Tooling for developers and CI (the local stack, the cluster, the benchmark,
the terminal chat, the NLU report). Runtime code never imports it."""
