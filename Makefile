# infrad: `make run` serves the demo site, `make test` runs every gate.

# Go lives here on Debian machines set up from go.dev; put it on the PATH if it is not.
export PATH := $(PATH):/usr/local/go/bin
GO ?= go

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)

# Debian packages the tests and benchmarks use (real clients and peers). `make deps`
# installs them; .ci/run does so on every clean machine. Tests that need a missing tool
# skip, saying which, unless INFRAD_E2E=1, where it is a failure. `make test` runs
# `make deps` first.
DEPS := make git curl qemu-user-static skopeo ca-certificates iproute2 dnsutils bind9 bind9-utils knot unbound knot-dnsutils knot-dnssecutils nsd dnsperf isc-dhcp-client isc-dhcp-relay kea-admin kea-dhcp4-server chrony lego certbot openssl nodejs chromium python3-scapy qemu-system-x86 ovmf ipxe ipxe-qemu busybox-static linux-image-amd64 dnsmasq-base openssh-client openssh-server ndisc6 wide-dhcpv6-client dhcpcd-base kea-dhcp6-server systemd isc-dhcp-server

.PHONY: all build run test bench fuzz deps ui-deps check-go clean release

all: build

check-go:
	@command -v $(GO) >/dev/null || { echo "infrad builds with Go 1.26 or newer, which is not on PATH: see https://go.dev/doc/install"; exit 1; }
	@$(GO) version | awk '{ split(substr($$3, 3), v, "."); if (v[1] < 1 || (v[1] == 1 && v[2] < 26)) { print "infrad needs Go 1.26 or newer; this is " $$3; exit 1 } }'

build: check-go
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/infrad ./cmd/infrad

run: build
	./bin/infrad serve

# Release artifacts in $(DIST): static binaries for linux/amd64 and linux/arm64, a
# .deb of each with the systemd unit and a system user (nfpm, fetched from the Go
# module proxy at a fixed version, so that go.mod carries none of its dependencies),
# and the multi-arch OCI image of both as an OCI image layout in $(DIST)/oci
# (deploy/ociimage; `skopeo copy oci:$(DIST)/oci:VERSION docker://...` pushes it).
# A .deb's version must start with a digit: a build between tags is 0.0~git<commit>.
# nfpm reads its file as it is: ARCH, DIST and VERSION in it are filled in here.
DIST ?= dist
NFPM := github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2
DEBVERSION ?= $(shell echo '$(VERSION)' | sed -E -e 's/^v([0-9])/\1/' -e '/^[0-9]+\./!s/^/0.0~git/' -e 's/-/+/g')
release: check-go
	mkdir -p $(DIST)
	for arch in amd64 arm64; do \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(DIST)/infrad-linux-$$arch ./cmd/infrad || exit 1; \
	done
	sed -e 's#/usr/local/bin/infrad#/usr/bin/infrad#' -e '/^DynamicUser=/d' -e 's/(dynamic) user/system user (made by the package)/' \
		deploy/infrad.service > $(DIST)/infrad.service
	for arch in amd64 arm64; do \
		sed -e "s#\$${ARCH}#$$arch#g" -e 's#$${DIST}#$(DIST)#g' -e 's#$${VERSION}#$(DEBVERSION)#g' deploy/nfpm.yaml > $(DIST)/nfpm-$$arch.yaml && \
		$(GO) run $(NFPM) package --config $(DIST)/nfpm-$$arch.yaml --packager deb --target $(DIST)/ || exit 1; \
	done
	cd deploy/ociimage && $(GO) run . -o $(abspath $(DIST))/oci -version '$(VERSION)' \
		linux/amd64=$(abspath $(DIST))/infrad-linux-amd64 linux/arm64=$(abspath $(DIST))/infrad-linux-arm64
	@ls -l $(DIST)

test: check-go deps ui-deps
	$(GO) vet ./...
	$(GO) tool staticcheck ./...
	$(GO) test -race -timeout 30m ./...

# Every fuzz target, FUZZTIME each (not part of `make test`, whose runs replay their
# seeds and every crash found so far, kept in testdata/fuzz).
FUZZTIME ?= 30s
FUZZ := ./pkg/ipam:FuzzCommands ./pkg/ipam:FuzzImportSpec ./pkg/config:FuzzParse ./pkg/importer:FuzzRead ./pkg/dhcp:FuzzHandle ./pkg/ntp:FuzzRequest ./pkg/dns:FuzzMessage ./pkg/api:FuzzDecode

fuzz: check-go
	@for t in $(FUZZ); do pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "fuzz $$fn ($$pkg) for $(FUZZTIME)"; \
		$(GO) test -run='^$$' -fuzz="^$$fn$$" -fuzztime=$(FUZZTIME) $$pkg || exit 1; \
	done

bench: build
	bench/startup.sh
	bench/dns.sh
	bench/dnssec.sh
	bench/dhcp.sh
	bench/tftp.sh
	bench/ntp.sh
	bench/write.sh
	bench/cluster.sh
	bench/flood.sh
	bench/scale.sh

# Installs the DEPS that are missing (nothing to do: no apt-get at all). Not root, or not
# Debian: it says what is missing and carries on, and the tests that need it skip.
# The UI's test tool: playwright-core (no browser of its own: it drives Debian's chromium).
ui-deps:
	@command -v npm >/dev/null || { echo "make ui-deps: no npm, so the UI tests will skip"; exit 0; }; \
	cd web/test && npm ci --no-audit --no-fund --loglevel=error

deps:
	@command -v dpkg >/dev/null || { echo "make deps: not a Debian system; install by hand: $(DEPS)"; exit 0; }; \
	missing=$$(for p in $(DEPS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	[ -n "$$missing" ] || exit 0; \
	if [ "$$(id -u)" != 0 ]; then echo "make deps: not root, so not installing:" $$missing; exit 0; fi; \
	apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing

clean:
	rm -rf bin $(DIST)
