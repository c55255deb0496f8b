module portcullis/differential/goecho

go 1.19
