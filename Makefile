.PHONY: setup test main golden crds
setup:
	scripts/bootstrap.sh
test:
	scripts/test.sh
main:
	scripts/main.sh
golden:
	scripts/test.sh tests/translate --update-golden
crds:
	scripts/bootstrap.sh && .venv/bin/appmesh-lab crds --write
