"""The synth engine: the environments of ``environments/`` in, the manifests of ``dist/`` out.

``app.py`` parses the options and hands them to :func:`synth.run.run`; what follows runs in one
direction, a module per stage, each module's docstring saying what it takes and what it gives:

1. **Load and validate the fleet** (:mod:`synth.fleet`): the environment files, every one validated
   (tiers/), the releases asked for picked out. Bad input stops here: one line, exit 2, nothing written.
2. **Plan** (:mod:`synth.plan`, the cache store :mod:`synth.cache`): each release's and the shared
   charts' cache key (the code's fingerprint and the validated model); what must be rendered, what
   the cache holds, what the output being replaced already holds as recorded.
3. **Render** (:mod:`synth.render` in one process, :mod:`synth.workers` across worker processes): the
   charts of each environment (constructs/release_chart.py, constructs/shared_charts.py) built and
   turned into JSON by the Python renderer (:mod:`synth.python_renderer`) or, with ``--renderer
   cdk8s``, by cdk8s in the jsii kernel (:mod:`synth.kernel`, :mod:`synth.jsii_wire`), and written as
   YAML (:mod:`synth.manifest_writer`, through :mod:`synth.files`).
4. **Write and promote** (:mod:`synth.pipeline`, :mod:`synth.output`): everything written into a
   private staging folder beside the output, then promoted under a lock if the output folder is one
   this project owns; the cache filled and the promoted parts recorded for the next synth.

:mod:`synth.run` ties them together with the signals and the one-line errors. Importing this package
imports nothing; ``import synth.kernel`` first (app.py does) so the jsii kernel starts only on demand.
"""
