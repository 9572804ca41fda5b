# The two commands of the README, and the pieces they are made of.
.PHONY: run test bundles verify-bundles

run:
	scripts/run.sh

test:
	scripts/test.sh

# Retrain both default bundles (about 10 minutes each on 2 cores) and verify them.
bundles:
	cd models && PYTHONPATH=src $$(../scripts/python-env.sh)/bin/python -m wavelet_pipeline train spx-return-1d
	cd models && PYTHONPATH=src $$(../scripts/python-env.sh)/bin/python -m wavelet_pipeline train spx-vol-5d
	$(MAKE) verify-bundles

verify-bundles:
	cd models && PYTHONPATH=src $$(../scripts/python-env.sh)/bin/python -m wavelet_pipeline verify bundles/spx-return-1d bundles/spx-vol-5d
