"${{ outPath = { outPath = "/nested"; }; }}"
