"""YAML jobs: attrs specs, sandboxed templating, plugins, and the builder.

>>> import tempfile, pathlib
>>> job = pathlib.Path(tempfile.mkdtemp()) / "job.yaml"
>>> _ = job.write_text('''
... job_name: demo
... extractor: {type: jsonl, path: "in/{{ ds }}/*.jsonl"}
... transform: {chain: [{type: normalize}]}
... loader: {type: files, dataset: "out-{{ ds_nodash }}", connection: {root: out}}
... ''')
>>> built = build_job(load_job(job, {"ds": "2025-09-06"}))
>>> built.pipeline.stages[-1]
load_files('out', dataset='out-20250906')
"""

from sesa_fp.config.builder import BuiltJob, build_job, load_job, parse_sets, read_yaml
from sesa_fp.config.spec import JobSpec

__all__ = ["BuiltJob", "JobSpec", "build_job", "load_job", "parse_sets", "read_yaml"]
