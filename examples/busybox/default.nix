# A small build graph that runs offline on any Linux machine with Debian's busybox-static:
# `kiln realise examples/busybox` builds `greeting` and `numbers` in parallel, then `report`,
# which reads both.
#
# busybox chooses its applet from the name it is started as, and a store path's name is
# `<hash>-busybox`, which it does not know. So the builder is imported as a directory holding
# just `busybox` (`builtins.path` with a filter), and run as `.../busybox sh -c SCRIPT`.
{ system ? builtins.currentSystem }:
let
  # Merged-/usr systems keep busybox in /usr/bin (/bin is a symlink to it).
  binDir = if builtins.pathExists /usr/bin/busybox then /usr/bin else /bin;
  busybox = builtins.path {
    name = "busybox";
    path = binDir;
    filter = path: type: baseNameOf path == "busybox";
  };
  sh = script: name: extra: derivation ({
    inherit name system;
    builder = "${busybox}/busybox";
    args = [ "sh" "-c" script ];
  } // extra);

  greeting = sh ''
    set -e
    echo "making the greeting"
    echo "hello from kiln" > $out
  '' "greeting" { };

  numbers = sh ''
    set -e
    echo "counting"
    bb=${busybox}/busybox
    $bb mkdir -p $out
    $bb seq 1 10 > $out/list
  '' "numbers" { };
in
sh ''
  set -e
  bb=${busybox}/busybox
  $bb mkdir -p $out/bin
  $bb cat ${greeting} > $out/greeting
  $bb wc -l < ${numbers}/list > $out/count
  echo "#!${busybox}/busybox sh" > $out/bin/hello
  echo "$bb cat $out/greeting" >> $out/bin/hello
  $bb chmod +x $out/bin/hello
  echo "report done"
'' "report" { }
