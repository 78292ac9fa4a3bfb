map baseNameOf [ "/a/b/c" "/a/b/" "file" "" "/" "a/b//" ]
