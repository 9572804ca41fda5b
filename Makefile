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

# Retrain every committed bundle (5 to 10 minutes each on 2 cores) and verify them.
BUNDLE_NAMES = spx-return-1d spx-vol-5d spx-range-vol-5d ndx-range-vol-5d
bundles:
	for b in $(BUNDLE_NAMES); do (cd models && PYTHONPATH=src $$(../scripts/python-env.sh)/bin/python -m wavelet_pipeline train $$b) || exit 1; done
	$(MAKE) verify-bundles

verify-bundles:
	cd models && PYTHONPATH=src $$(../scripts/python-env.sh)/bin/python -m wavelet_pipeline verify $(addprefix bundles/,$(BUNDLE_NAMES))
