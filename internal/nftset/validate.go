package nftset

// Validate checks cfg the way New does, without touching the kernel, so a
// Corefile with a bad hook line fails at parse time.
func (cfg Config) Validate() error {
	_, err := parseConfig(cfg)
	return err
}
