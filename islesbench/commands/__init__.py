"""One thin module per `islesbench` command: `configure_parser(parser)` and `run_command(args)`, its
--help text in the module docstring. The commands are the one place that joins the stages
(data_prep -> islesbench -> tuning/reports); no library module imports them.

May import: everything. TensorFlow-heavy modules are imported inside run_command so that
`islesbench --help` stays fast.
"""
