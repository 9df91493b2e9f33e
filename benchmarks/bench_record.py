"""What every benchmark's ``--json`` file carries besides its numbers: a
schema version, the date, the command, and the run record (threads,
versions, commit, machine) of :func:`mmseg_ood.utils.run_record.run_record`,
written atomically (a temporary file, then ``os.replace``).

    from bench_record import write_results
    write_results(args.json, 'scoring_overhead', dict(settings=...,
                                                      results=...))
"""
import datetime
import os
import sys

#: Version of the layout of a benchmark's ``--json`` file.
BENCH_SCHEMA = 1


def write_results(path, benchmark: str, payload: dict) -> dict:
    """Write ``payload`` and the run's provenance to ``path`` (if given).

    Args:
        path: The JSON file, or ``None`` to write nothing.
        benchmark: The benchmark's name (its file name without ``.py``).
        payload: Plain values (numpy scalars and NaN are converted).

    Returns:
        dict: The record as written.
    """
    from mmseg_ood.utils.files import dump_json
    from mmseg_ood.utils.run_record import run_record
    record = dict(schema=BENCH_SCHEMA, benchmark=benchmark,
                  date=datetime.datetime.now(datetime.timezone.utc)
                  .isoformat(timespec='seconds'),
                  command=' '.join([os.path.basename(sys.executable)] +
                                   sys.argv),
                  run=run_record(), **payload)
    if os.environ.get('GPU_CHECK_COMMIT') and record['run'].get(
            'commit') is None:
        # a copy of the tree without .git (a lent machine): the commit the
        # caller names
        record['run']['commit'] = os.environ['GPU_CHECK_COMMIT']
    if path:
        dump_json(record, path)
    return record
