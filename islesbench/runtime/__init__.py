"""The machine and the process: which precision runs natively here (islesbench.runtime.precision), the
tf.distribute strategy from TF_CONFIG (distribute), keeping TensorFlow's start-up chatter off the console
(console), and the environment a child process starts with (child_env).

May import: the core (islesbench.errors, islesbench.atomic, islesbench.config). TensorFlow is imported
inside functions, so that `islesbench --help` stays fast.
"""
