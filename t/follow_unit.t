#!/usr/bin/perl

# Tests the systemd unit of apikeyctl follow, tools/apikeyctl-follow@.service:
# systemd-analyze verify finds nothing to say about an instance of it (the
# built apikeyctl in place of /usr/sbin/apikeyctl), and it has the
# sandbox a daemon should have: no capability but CAP_CHOWN, the system
# read-only but the instance's database, only the address families
# libpq needs, the system calls of a service.

use strict;
use warnings;

use Test::More;

use File::Temp qw(tempdir);

use Apikey::Harness;

my $t = Apikey::Harness->new()->require_apikeyctl();

my $unit = Apikey::Harness::slurp($t->{root}
                                  . '/tools/apikeyctl-follow@.service');

like($unit, qr{^ExecStart=/usr/sbin/apikeyctl -d /var/lib/apikey/%i follow \$APIKEY_FOLLOW_OPTIONS$}m,
     'ExecStart: the instance\'s database, no conninfo on the command line '
     . '(follow reads APIKEY_FOLLOW_CONNINFO of its file)');
unlike($unit, qr/^ExecStart=.*CONNINFO/m,
       'ExecStart: APIKEY_FOLLOW_CONNINFO not in argv (/proc/PID/cmdline)');
like($unit, qr{^EnvironmentFile=/etc/apikey/follow-%i\.env$}m,
     'EnvironmentFile: one per instance');

for my $line ('Restart=on-failure', 'RestartPreventExitStatus=2 3',
              'CapabilityBoundingSet=CAP_CHOWN', 'NoNewPrivileges=yes',
              'ProtectSystem=strict', 'ReadWritePaths=/var/lib/apikey/%i',
              'ProtectHome=yes', 'PrivateTmp=yes', 'PrivateDevices=yes',
              'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6',
              'SystemCallFilter=@system-service',
              'MemoryDenyWriteExecute=yes')
{
    like($unit, qr/^\Q$line\E$/m, "unit: $line");
}

SKIP: {
    my $analyze = '/usr/bin/systemd-analyze';
    skip 'systemd-analyze not installed', 2 unless -x $analyze;

    my $dir = tempdir(CLEANUP => 1);
    my $path = "$dir/apikeyctl-follow\@test.service";

    (my $copy = $unit) =~ s{/usr/sbin/apikeyctl}{$t->{apikeyctl}}g;
    Apikey::Harness::write_file($path, $copy);

    my $out = `$analyze verify --man=no '$path' 2>&1`;
    is($?, 0, 'systemd-analyze verify exits 0');
    is($out, '', 'systemd-analyze verify has nothing to say');
}

done_testing();
