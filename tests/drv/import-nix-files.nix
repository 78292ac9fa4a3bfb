let
  mk = import ./fixtures/mk.nix;
  pkg = import ./fixtures/pkgdir;
in
mk { name = "from-mk"; deps = [ pkg (mk { name = "inner"; }) ]; }
