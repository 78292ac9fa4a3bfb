scopedImport { injected = 41; } ./fixtures/uses-injected.nix
