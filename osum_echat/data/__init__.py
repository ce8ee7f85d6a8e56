"""Data pipeline: sources (raw / shard / combine), the task catalogue (tag -> TaskSpec ->
conversation segments), per-sample stages, batching/packing, the family mixture with exact
resume, and the data-format writers. See docs/data.md.

Entry points: ``loader.build_loader`` (train/CV loaders), ``tasks.get_spec`` + ``TaskSpec.build``
(inference prompts), ``loader.build_renderer``.
"""
