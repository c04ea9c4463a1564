"""The server half of the retraining loop: ``modeldeploy retrain`` (the example trainer a
training Job runs) and the split of the recent labelled window that it and the gate share.

The operator starts the Jobs; these modules only read the labelled-data store, fit, bundle,
register and answer through the termination message (``contract.retrain``).
"""
