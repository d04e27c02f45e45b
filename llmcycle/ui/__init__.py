"""``llmcycle ui``: a local web UI beside the lifecycle: playground, runs and reports, recipe launcher.

Why the existing FastAPI stack with one small page, and not Gradio. The UI must work offline, with no
asset fetched from elsewhere at run time, and start within seconds:

* Gradio's page has not been offline by default: its themes loaded fonts from Google Fonts (gradio
  issue #1450; the default theme moved to bundled fonts in PR #9367, other themes did not), its page
  template loaded a script from cdnjs and preconnected to font CDNs, and it sent analytics to
  api.gradio.app unless disabled (kohya_ss issue #3508, on Gradio 5.34, fixed there by rewriting
  Gradio's served HTML in PR #3565); self-hosting every asset came with gradio PR #13463. A UI that is
  offline only with the newest release, or after patching another project's HTML, is the wrong base.
* It would be a large new dependency (its frontend bundle, its own server stack) for a tool whose
  server stack already exists: FastAPI, uvicorn and their tests serve ``llmcycle serve``.
* The page here is one HTML file, one script and one style sheet shipped in the package
  (``static/``): no framework, no build step, nothing fetched; every figure it shows comes from the
  library (the recipe, the plan, the stage registry's ``glance``, ``GenerationSettings``, ROUGE).

Layout, as ``serving/`` reads: ``config`` (``UIConfig``: local only unless a key is given) ->
``runs`` (the runs directory, read only) -> ``playground`` (models, prompts, streamed generation) ->
``launcher`` (recipes checked whole, run as child processes) -> ``app`` (routes, guards, errors) ->
``server`` (the socket and uvicorn). ``llmcycle.cli.ui`` is the command.
"""
