let o = { outPath = "/some/path"; }; in "${o}/bin"
