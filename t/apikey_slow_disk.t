#!/usr/bin/perl

# Tests writes to a slow disk while nginx serves under load, with two
# workers (issue 9): apikeyctl runs with a preloaded shim that makes
# every synchronous write wait 600 ms after it is done (fdatasync(),
# fsync(), and a write through an O_DSYNC descriptor), as a busy disk
# does.  LMDB gives readers a commit's transaction id only when the
# write of its meta page returns; while the new meta page is in the file
# and the lock file still has the old id, workers are one commit
# behind, which they take for a commit in flight for 200 ms only.
# apikeyctl writes the meta page without O_DSYNC and syncs it after the
# commit, so the workers never wait on the disk: every revoke is seen by
# the next request, and no request gets a 503 (as it did, for as long
# as the disk took, when the meta page write was synchronous).

use strict;
use warnings;

use Test::More;

use Time::HiRes qw(sleep time);

use Apikey::Harness qw(scaled);
use Apikey::Load qw(unknown_keys);

my $t = Apikey::Harness->new()->require_all();

plan(skip_all => 'Linux only (LD_PRELOAD, O_DSYNC)') unless $^O eq 'linux';

my $dir = $t->prefix();

# the shim: the write done, then the wait; each wait logged

Apikey::Harness::write_file("$dir/slow.c", <<'EOF');
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void
slow(const char *call)
{
    char        line[64];
    const char *log;
    int         fd, n;

    log = getenv("SLOW_DISK_LOG");
    if (log != NULL) {
        fd = open(log, O_WRONLY | O_APPEND | O_CREAT, 0600);
        if (fd != -1) {
            n = snprintf(line, sizeof(line), "%s\n", call);
            if (write(fd, line, n) != n) {
                /* void */
            }
            close(fd);
        }
    }

    usleep(600000);
}

static int
dsync(int fd)
{
    int  fl;

    fl = fcntl(fd, F_GETFL);
    return fl != -1 && (fl & O_DSYNC) == O_DSYNC;
}

ssize_t
pwrite(int fd, const void *buf, size_t n, off_t off)
{
    ssize_t  rc;
    ssize_t (*real)(int, const void *, size_t, off_t);

    real = (ssize_t (*)(int, const void *, size_t, off_t))
           dlsym(RTLD_NEXT, "pwrite");
    rc = real(fd, buf, n, off);
    if (dsync(fd)) {
        slow("pwrite O_DSYNC");
    }
    return rc;
}

ssize_t
pwrite64(int fd, const void *buf, size_t n, off_t off)
{
    ssize_t  rc;
    ssize_t (*real)(int, const void *, size_t, off_t);

    real = (ssize_t (*)(int, const void *, size_t, off_t))
           dlsym(RTLD_NEXT, "pwrite64");
    rc = real(fd, buf, n, off);
    if (dsync(fd)) {
        slow("pwrite64 O_DSYNC");
    }
    return rc;
}

int
fdatasync(int fd)
{
    int  rc;
    int (*real)(int);

    real = (int (*)(int)) dlsym(RTLD_NEXT, "fdatasync");
    rc = real(fd);
    slow("fdatasync");
    return rc;
}

int
fsync(int fd)
{
    int  rc;
    int (*real)(int);

    real = (int (*)(int)) dlsym(RTLD_NEXT, "fsync");
    rc = real(fd);
    slow("fsync");
    return rc;
}
EOF

my $cc = `cc -shared -fPIC -O -o $dir/slow.so $dir/slow.c -ldl 2>&1`;
plan(skip_all => "cannot build the shim: $cc") if $? != 0;

$t->init_db();

my %key;

$key{"V$_"} = $t->gen('--id', "V$_") for 1 .. 3;
$key{"R$_"} = $t->gen('--id', "R$_") for 1 .. 4;

my @unknown = unknown_keys($t, 2);

$t->write_config(<<"EOF", workers => 2);
    apikey_db %%DB%%;
    apikey_secret %%SECRET%%;

    server {
        listen 127.0.0.1:%%PORT%%;

        location / {
            apikey on;
            empty_gif;
        }
    }
EOF

$t->start();

my $load = Apikey::Load->new(port => $t->port(0), dir => "$dir/load",
                             clients => 3);

$load->key($_, $key{$_}, 'valid', 200) for map { "V$_" } 1 .. 3;
$load->key($_, $key{$_}, 'revoked', 200) for map { "R$_" } 1 .. 4;
$load->key_list('U', 'unknown', 401, @unknown);

$load->start();
$load->wait_requests(300);

# the revokes, each through the slow disk

my $log = "$dir/slow.log";
my @failed;

{
    local $ENV{LD_PRELOAD} = "$dir/slow.so";
    local $ENV{SLOW_DISK_LOG} = $log;

    for my $n (1 .. 4) {
        my ($rc, $out, $err) = $load->change({ "R$n" => 401 },
                                             sub { $t->ctl('revoke', "R$n") },
                                             name => 'revoke');
        push @failed, "revoke R$n: exit $rc: $err" if $rc != 0;

        $load->wait_requests(100);
    }
}

is(join("\n", @failed), '', 'every revoke on the slow disk succeeded');

my @waits = split /\n/, Apikey::Harness::slurp($log);
cmp_ok(scalar @waits, '>=', 4, 'the disk was slow for each revoke')
    or diag(join("\n", @waits));

$load->wait_requests(300);
$load->stop();

my $s = $load->ok(name => 'slow disk', min => 500, retried => 0);

is($s->{status}{503} // 0, 0, 'no 503');
cmp_ok($s->{classes}{'revoked 401'} // 0, '>', 0, 'revoked keys seen 401');

diag('waits: ' . join(', ', map { "$_->[0] x$_->[1]" }
                            map { my $w = $_; [ $w, scalar grep { $_ eq $w }
                                                         @waits ] }
                            sort keys %{{ map { $_ => 1 } @waits }}));

$t->stop();
$t->check_log();

unlike($t->error_log(), qr/does not belong/,
       'no worker took the commit for a lock file not its own');

done_testing();
