"""Applications on a model, the lifecycle's last step: retrieval-augmented generation, program-aided answers in a
sandbox, ReAct agents with tools, and chain-of-thought with self-consistency.

- ``llm``: the LLM an application talks to: an llmcycle model in this process (``LocalLLM``) or any
  OpenAI-compatible endpoint (``EndpointLLM``: ``llmcycle serve``, vLLM, llama.cpp), one interface.
- ``corpus`` and ``retrieval``: documents from files or a data set's column, token chunks with overlap,
  sentence-transformers + FAISS (flat or HNSW), BM25 (bm25s), hybrid by reciprocal rank fusion; saved and loaded.
- ``rag``: retrieved passages numbered in the prompt within the budget, answers with citations, evaluation.
- ``sandbox``: model-written Python run under bubblewrap with resource limits; ``pal`` builds on it.
- ``tools`` and ``react``: a tool registry (search, calculator, sandboxed Python, your functions) and the
  Thought / Action / Observation loop.
- ``cot``: answer extraction, majority vote, self-consistency. ``metrics``: hit@k, MRR, nDCG, exact match.
- ``taskset``: the shipped question sets (``builtin:arithmetic``, ``builtin:dialogue-questions``) and your own.

The stages ``rag``, ``pal``, ``agent`` and ``cot`` (``llmcycle.stages``) and the commands ``llmcycle rag``,
``pal``, ``agent`` and ``cot`` are built on these. Importing this package is cheap: FAISS, bm25s,
sentence-transformers and httpx load when an index is built or an endpoint is called.
"""
