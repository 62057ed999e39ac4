"""BAB's software gateway: an LMN master (HDLC primary) that finds, addresses, checks and reads meters."""
