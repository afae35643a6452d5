// Command ociimage writes infrad's multi-arch OCI image, as an OCI image layout, from
// the static binaries `make release` builds. Each architecture's image is one layer
// on no base (the binary needs none): /usr/local/bin/infrad, a nonroot user (65532,
// as distroless's) in /etc/passwd and /etc/group, and its data directory; it runs
// deploy/Containerfile's command. It is its own module, so that the product's go.mod
// carries none of go-containerregistry's dependencies.
//
//	go run . -o DIR -version V linux/amd64=infrad-linux-amd64 linux/arm64=infrad-linux-arm64
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func main() {
	out := flag.String("o", "", "the OCI image layout directory to write (made anew)")
	version := flag.String("version", "dev", "the image's version label")
	flag.Parse()
	if *out == "" || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: ociimage -o DIR [-version V] os/arch=BINARY...")
		os.Exit(2)
	}
	if err := write(*out, *version, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "ociimage:", err)
		os.Exit(1)
	}
}

func write(dir, version string, binaries []string) error {
	index := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, arg := range binaries {
		platform, path, ok := strings.Cut(arg, "=")
		goos, arch, ok2 := strings.Cut(platform, "/")
		if !ok || !ok2 {
			return fmt.Errorf("%q is not os/arch=BINARY", arg)
		}
		bin, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		img, err := image(goos, arch, version, bin)
		if err != nil {
			return fmt.Errorf("%s: %w", platform, err)
		}
		index = mutate.AppendManifests(index, mutate.IndexAddendum{Add: img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: goos, Architecture: arch}}})
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	// The layout's index names the multi-arch index by its tag, as skopeo and podman
	// read it (oci:DIR:TAG).
	return p.AppendIndex(index, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": version}))
}

// nonroot is the user the image runs as.
const nonroot = 65532

func image(goos, arch, version string, bin []byte) (v1.Image, error) {
	files, err := rootfs(bin)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(files)), nil },
		tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	if img, err = mutate.AppendLayers(img, layer); err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = goos, arch
	cfg.Config.User = fmt.Sprintf("%d:%d", nonroot, nonroot)
	cfg.Config.Entrypoint = []string{"/usr/local/bin/infrad", "serve", "-c", "/etc/infrad/site.yaml", "--data", "/var/lib/infrad"}
	cfg.Config.Volumes = map[string]struct{}{"/var/lib/infrad": {}}
	cfg.Config.ExposedPorts = map[string]struct{}{"53/udp": {}, "53/tcp": {}, "67/udp": {}, "123/udp": {}, "443/tcp": {}, "8080/tcp": {}}
	cfg.Config.Labels = map[string]string{"org.opencontainers.image.title": "infrad", "org.opencontainers.image.version": version}
	return mutate.ConfigFile(img, cfg)
}

// rootfs is the layer's tar: the binary, the nonroot user and its data directory.
func rootfs(bin []byte) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dir := func(name string, uid int) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, Uid: uid, Gid: uid})
	}
	file := func(name string, mode int64, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data))}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	for _, step := range []func() error{
		func() error { return dir("etc/", 0) },
		func() error { return dir("etc/infrad/", 0) },
		func() error {
			return file("etc/passwd", 0o644, fmt.Appendf(nil, "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/var/lib/infrad:/sbin/nologin\n", nonroot, nonroot))
		},
		func() error { return file("etc/group", 0o644, fmt.Appendf(nil, "root:x:0:\nnonroot:x:%d:\n", nonroot)) },
		func() error { return dir("tmp/", 0) },
		func() error { return dir("usr/", 0) },
		func() error { return dir("usr/local/", 0) },
		func() error { return dir("usr/local/bin/", 0) },
		func() error { return file("usr/local/bin/infrad", 0o755, bin) },
		func() error { return dir("var/", 0) },
		func() error { return dir("var/lib/", 0) },
		func() error {
			return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "var/lib/infrad/", Mode: 0o700, Uid: nonroot, Gid: nonroot})
		},
	} {
		if err := step(); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
