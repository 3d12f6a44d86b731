"""kssl's application layer, one job a file: what a run is (`config`), where it is
written (`staging`), what data it reads (`data`), what it does (`stages`), the jobs that
put them together (`jobs`) and what they print (`report`). The `kssl` command is thin
over `kssl.app.jobs`."""
