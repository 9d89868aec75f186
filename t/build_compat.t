#!/usr/bin/perl

# Tests the second way to build: against an nginx source tree configured
# --with-compat (NGINX_SRC=...), here a copy of the tree nginx-dev ships,
# configured with nginx's default options rather than Debian's; the
# module must load into Debian's nginx binary all the same.

use strict;
use warnings;

use Test::More;

use Apikey::Harness qw(write_file);

my $t = Apikey::Harness->new()->require_all();

my $dev = '/usr/share/nginx/src';

plan(skip_all => "no nginx source tree at $dev (nginx-dev)")
    unless -x "$dev/configure";

# nginx loads only modules built from its own version: under make
# test-matrix the binary is another nginx, which the matrix builds the
# module for itself

my ($dev_version) = Apikey::Harness::slurp("$dev/src/core/nginx.h")
    =~ /^#define NGINX_VERSION\s+"([^"]+)"/m;
my ($bin_version) = `$t->{nginx} -v 2>&1` =~ m{nginx/(\S+)};

plan(skip_all => "$t->{nginx} is nginx $bin_version, $dev holds "
                 . "nginx $dev_version")
    unless defined $dev_version && defined $bin_version
           && $dev_version eq $bin_version;

my $prefix = $t->prefix();
my $src = "$prefix/nginx-src";
my $out = "$prefix/build";

system('cp', '-r', $dev, $src) == 0 or die "cp: $?";

my $log = `make -C $t->{root} NGINX_SRC=$src B=$out $out/ngx_http_apikey_module.so 2>&1`;
my $rc = $? >> 8;

is($rc, 0, 'make with NGINX_SRC') or diag($log);
like($log, qr/--with-compat/, 'configured --with-compat');
ok(-f "$out/ngx_http_apikey_module.so", 'module built');

write_file($t->secret(), join('', map { sprintf '%02x', $_ } 1 .. 32) . "\n");

$t->write_config(<<'EOF');
    server {
        listen 127.0.0.1:%%PORT%%;

        location / {
            apikey on;
            apikey_db %%DB%%;
            apikey_secret %%SECRET%%;
            empty_gif;
        }
    }
EOF

# the configuration names the module built by make; load this one instead

my $conf = Apikey::Harness::slurp("$prefix/nginx.conf");
$conf =~ s{^load_module \S+;}{load_module $out/ngx_http_apikey_module.so;}m;
write_file("$prefix/nginx.conf", $conf);

my ($trc, $tout) = $t->nginx_test();

is($trc, 0, 'nginx -t loads the module built --with-compat') or diag($tout);

done_testing();
