# make soak: the load that knows the right answer, with every writer
# loop at once, against Debian's nginx and the module, for a while
#
#   make soak                   ten minutes
#   make soak DURATION=30s      30s, 10m, 1h...
#   make soak SOAK_FLAGS='--workers 4'
#
# bench/soak.pl prints requests served, wrong decisions, unexpected
# 5xx, revocation latency percentiles, worker RSS and database size
# after the warm-up and at the end, and whether they stayed flat; the
# table, samples and chart go to $(SOAK_OUT)/soak.{md,tsv,png}.  It
# fails on a wrong decision, an unexpected 5xx, a revocation p99 of
# 10 ms or more, or a growth.  t/soak.t runs 30 seconds of it.

DURATION ?=         10m
SOAK_OUT ?=         bench/results
SOAK_FLAGS ?=

.PHONY: soak

soak: deps-bench all
	bench/soak.pl --duration $(DURATION) --build $(B) \
	    --nginx $(NGINX_BIN) --out $(SOAK_OUT) $(SOAK_FLAGS)
