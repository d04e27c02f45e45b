"""Pre-training: tokenizer training, from-scratch objectives (causal LM, masked LM, T5 span corruption),
continued pre-training for domain adaptation, and scaling laws (sweeps and the fit of L(N, D))."""
