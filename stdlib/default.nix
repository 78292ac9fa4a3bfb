# The kiln standard library: `import <kiln> { }`.
#
# Arguments: `system` (default: the evaluating machine's) is the system every derivation made
# here is built for; its architecture (`x86_64`, `aarch64`) is the default of `arch` arguments.
#
# Contents (each function is documented above its definition in the file named):
#   fetchurl, unpack, writeText, runInRoot   fetch.nix
#   layer                                    layer.nix
#   oci, dockerArchive                       oci.nix
#   bootstrap.centosStream9, bootstrap.alma9 bootstrap.nix
#   rpm.repositories, rpm.lockFile, rpm.lockProblem, rpm.checkLock, rpm.fetchLocked,
#   rpm.install, rpm.lock                    rpm.nix
{ system ? builtins.currentSystem, ... }:
let
  kiln =
    {
      inherit system;

      # The architecture part of `system` (`x86_64-linux` -> `x86_64`).
      hostArch = builtins.head (builtins.split "-" system);

      # checkArch ARCH: ARCH if kiln knows it, else an error. Architectures are `uname -m`
      # names; `arm64` (a Docker/Go name) is refused with a hint to `aarch64`.
      checkArch = arch:
        if arch == "arm64" then
          throw "kiln: unknown architecture `arm64`; architectures are `uname -m` names: use `aarch64`"
        else if builtins.elem arch [ "x86_64" "aarch64" ] then
          arch
        else
          throw "kiln: unknown architecture `${arch}`; known: x86_64, aarch64";

      # systemOf ARCH: the derivation `system` for an architecture (`aarch64` -> `aarch64-linux`).
      systemOf = arch: "${kiln.checkArch arch}-linux";
    }
    // import ./fetch.nix kiln
    // import ./layer.nix kiln
    // import ./oci.nix kiln
    // {
      bootstrap = import ./bootstrap.nix kiln;
      rpm = import ./rpm.nix kiln;
    };
in
kiln
