# Container images of root filesystems, built by kiln's `builtin:oci` (in-process, no tool,
# no daemon), the same bytes on every machine: the same expression gives the same manifest
# digest anywhere.
kiln:
let
  # OCI architecture names of kiln's (`uname -m`) architectures.
  ociArch = arch: { x86_64 = "amd64"; aarch64 = "arm64"; }.${kiln.checkArch arch};

  image = format:
    { name
    , tag ? "latest"
    , rootfs
    , config ? { }
    , arch ? kiln.hostArch
    , created ? "1970-01-01T00:00:01Z"
    , compression ? "gzip"
    }:
    let
      layers = if builtins.isList rootfs then rootfs else [ rootfs ];
      baseName = builtins.replaceStrings [ "/" ":" ] [ "-" "-" ] name;
    in
    if layers == [ ] then
      throw "kiln.${if format == "oci" then "oci" else "dockerArchive"}: `rootfs` has no layer"
    else
      derivation {
        name = if format == "oci" then "${baseName}-${tag}-oci" else "${baseName}-${tag}.tar";
        # Packaging only: an image for any architecture is made on any machine.
        system = "builtin";
        builder = "builtin:oci";
        inherit format tag created compression layers;
        imageName = name;
        architecture = ociArch arch;
        config = builtins.toJSON config;
        preferLocalBuild = true;
      };
in
{
  # oci { name, tag ? "latest", rootfs, config ? { }, arch ? <this machine's>,
  #       created ? "1970-01-01T00:00:01Z", compression ? "gzip" }
  #
  # An OCI image layout directory (`oci-layout`, `index.json`, `blobs/sha256/…`) of `rootfs`:
  # one root-filesystem directory, or a list of them, first on top as in `rootfs` of a build,
  # each becoming one image layer. `config` is the OCI image config's `config` object, e.g.
  # `{ Cmd = [ "/bin/sh" ]; Env = [ "PATH=/usr/bin:/bin" ]; WorkingDir = "/"; User = "0:0";
  # Labels = { … }; }`. `compression` is "gzip" or "zstd". Every file is owned by 0:0 with the
  # mode the store gives it and modification time 1. A layer deletes a path of the layers below
  # with an empty file `.wh.NAME` beside it (`.wh..wh..opq` hides a whole directory below), as
  # in OCI layers. Use it with `skopeo copy oci:result docker-daemon:NAME:TAG`, `podman load
  # -i` (after `skopeo copy … oci-archive:…`) or `umoci unpack`.
  oci = image "oci";

  # dockerArchive { …the same arguments… }: a `docker save` tarball (uncompressed layers,
  # `manifest.json` naming `NAME:TAG`) for `docker load -i result` or `podman load -i result`.
  dockerArchive = image "docker-archive";
}
