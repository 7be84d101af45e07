"""Example agents: run one from a checkout with `spiral agent examples.<file>:<Class>`."""
