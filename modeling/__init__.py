"""Everything that turns raw exercise 06 rows into probabilities.

Schema and cleaning, the base learners and their stack, tuning, evaluation, the model
bundle and the command line. Knows nothing of the transport (gRPC, HTTP) that serves it.
"""
