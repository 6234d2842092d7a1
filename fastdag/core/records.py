"""The raw record a worker keeps of each task it runs: nine numbers in a fixed order.

    worker: execute(task) ──> (index, start, end, fetch_s, store_s, input_bytes,
                               output_bytes, attempts, ready)
                              one block per task, or a whole batch of them flat
        ──> events (TaskBatch) ──> dashboard
        ──> placement (run times of functions never sampled)
        ──> metrics (TaskRecord, the Arrow columns of a RunReport)

The layout lives here, below all of its readers, so that the event stream
and the executors read it without importing the metrics layer.
"""

# Order of the raw numbers a worker records for each task.
RAW_FIELDS = ("index", "start", "end", "fetch_s", "store_s", "input_bytes",
              "output_bytes", "attempts", "ready")
RAW_WIDTH = len(RAW_FIELDS)
# Positions of those fields in a record (``record[END] - record[START]``), so a
# reader never counts commas; a record with a prefix (the Redis worker's name
# first) reads ``record[1 + OUTPUT_BYTES]``.
INDEX, START, END, FETCH_S, STORE_S, INPUT_BYTES, OUTPUT_BYTES, ATTEMPTS, READY = \
    range(RAW_WIDTH)
