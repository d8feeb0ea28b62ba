"""`pipeline console`: a web page on 127.0.0.1 that shows what the CLI shows, at a glance.

Server-rendered HTML (no build step, one small committed script for live refresh and confirmations), read
through the same `Pipeline` and the same helpers as the commands: `views` computes what each page shows
from job records, executions, DLQ messages, alarms and metrics (pure); `source` reads them; `metrics` turns
the deployed dashboard's graphs into GetMetricData queries; `pages` renders HTML; `server` serves it, read
only unless started with `--allow-actions`, and refuses requests from other origins or for other hosts.
"""
