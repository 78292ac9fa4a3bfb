import (./fixtures + "/value.nix")
