"""Alignment with human (or AI) preferences: reward sources, a trained reward model, PPO with a KL
penalty for seq2seq and decoder-only policies, DPO, and constitutional critique-and-revise."""
