# The two commands of the README, and the pieces they are made of.
.PHONY: run test e2e images bundles verify-bundles

run:
	scripts/run.sh

test:
	scripts/test.sh

# The kind tier alone (part of `make test`).
e2e:
	scripts/e2e.sh

# The images, built the offline way (Dockerfile.server, Dockerfile.operator, Dockerfile.bundle).
images:
	scripts/images.sh

# Retrain both default bundles (about 10 minutes each on 2 cores) and verify them.
bundles:
	cd models && PYTHONPATH=src $$(../scripts/python-env.sh)/bin/python -m wavelet_pipeline train spx-return-1d
	cd models && PYTHONPATH=src $$(../scripts/python-env.sh)/bin/python -m wavelet_pipeline train spx-vol-5d
	$(MAKE) verify-bundles

verify-bundles:
	cd models && PYTHONPATH=src $$(../scripts/python-env.sh)/bin/python -m wavelet_pipeline verify bundles/spx-return-1d bundles/spx-vol-5d
