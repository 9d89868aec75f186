#!/usr/bin/perl

# Tests the Debian packages the way an administrator meets them, on this
# machine's own nginx (root only; make test-install, and make test when
# root): README.md's install steps run in a copy of the tree (make deb,
# apt install ./...deb, nginx -t), lintian finds no error, the module is
# enabled through /etc/nginx/modules-enabled, a running nginx without
# "apikey on" serves as before, the installed apikeyctl makes the
# database of the example site, the system nginx (its /etc/nginx
# configuration with the example site dropped in, on a free port) serves
# a protected request, and the purge leaves nothing of the packages:
# the machine is as it was, package for package and file for file.
#
# APIKEY_README=file reads the install steps from another file than
# README.md (a section before it is pasted in).

use strict;
use warnings;

use Test::More;
use Cwd qw(abs_path);
use Digest::MD5;
use Fcntl qw(:flock);
use File::Basename qw(dirname);
use File::Find qw(find);
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);

use Apikey::Harness qw(http_get write_file);
use Apikey::Install qw(readme_blocks);

my $root = abs_path(dirname(__FILE__) . '/../..');
my $nginx = '/usr/sbin/nginx';
my @packages = qw(libnginx-mod-http-apikey apikeyctl);
my $link = '/etc/nginx/modules-enabled/50-mod-http-apikey.conf';
my $snippet = '/usr/share/nginx/modules-available/mod-http-apikey.conf';
my $db = '/var/lib/apikey';
my $secret = '/etc/nginx/apikey.secret';
my $example = '/usr/share/doc/libnginx-mod-http-apikey/examples/'
              . 'apikey-site.conf';
my $policy = '/usr/sbin/policy-rc.d';

# the steps README.md's "## Install" section gives, run when it has none
# yet: the same text as the block it is to hold

my $steps = <<'EOF';
make deb
apt install ./libnginx-mod-http-apikey_*.deb ./apikeyctl_*.deb
nginx -t
EOF

plan(skip_all => 'installs packages: root only') unless $> == 0;

plan(skip_all => "the packages are for Debian's nginx ($nginx); "
                 . "TEST_NGINX_BINARY is $ENV{TEST_NGINX_BINARY}")
    if $ENV{TEST_NGINX_BINARY} && $ENV{TEST_NGINX_BINARY} ne $nginx;

for my $tool (qw(dpkg-buildpackage dh apt apt-get lintian fakeroot)) {
    plan(skip_all => "no $tool (run make deps-deb)")
        unless grep { -x "$_/$tool" } split /:/, $ENV{PATH};
}

plan(skip_all => "no Debian nginx ($nginx, /etc/nginx/nginx.conf, "
                 . "nginx-dev)")
    unless -x $nginx && -f '/etc/nginx/nginx.conf'
           && -f '/usr/share/nginx/src/conf_flags';

# one run at a time, from any checkout: a second one waits (a lock on the
# configuration it uses, so that no lock file is left behind)

open my $lock, '<', '/etc/nginx/nginx.conf' or die $!;
flock($lock, LOCK_EX) or die "flock: $!";

for my $p (@packages) {
    plan(skip_all => "$p is installed: the test would purge it")
        if `dpkg-query -W -f '\${Status}' $p 2>/dev/null` =~ /installed/;
}

for my $f ($db, $secret, $link, $snippet) {
    plan(skip_all => "$f exists: the test would remove it")
        if -e $f || -l $f;
}

my $t = Apikey::Harness->new();
my $tmp = $t->prefix();

# what must be the same after the test: the packages, and every file
# under the paths the packages or the test touch

my @watched = qw(/etc/nginx /usr/share/nginx /usr/lib/nginx /var/lib/apikey
                 /usr/share/doc/libnginx-mod-http-apikey
                 /usr/share/doc/apikeyctl /usr/sbin/apikeyctl
                 /usr/sbin/policy-rc.d /usr/share/bash-completion
                 /usr/share/man/man1/apikeyctl.1.gz /var/log/nginx
                 /lib/systemd/system/apikeyctl-follow@.service
                 /etc/systemd/system
                 /var/lib/systemd/deb-systemd-helper-enabled
                 /var/lib/systemd/deb-systemd-helper-masked);

sub snapshot {
    my @s = `dpkg-query -W -f '\${Package} \${Version} \${Status}\\n'`;

    for my $top (@watched) {
        next unless -e $top || -l $top;

        find({ no_chdir => 1, wanted => sub {
            my @st = lstat($_);
            my $line = sprintf '%s %o %d:%d', $_, $st[2], $st[4], $st[5];

            if (-l $_) {
                $line .= ' -> ' . readlink($_);

            } elsif (-f $_ && $File::Find::name !~ m{^/usr/share/nginx/src/}
                     && $File::Find::name !~ m{^/var/log/nginx/})
            {
                open my $fh, '<', $_ or die "$_: $!";
                $line .= ' ' . Digest::MD5->new->addfile($fh)->hexdigest;
            }

            push @s, "$line\n";
        } }, $top);
    }

    return [ sort @s ];
}

my $started = time();
my $before = snapshot();

# policy-rc.d: no service started or reloaded by the packages (the
# nginx-reload trigger of the module package runs "invoke-rc.d nginx
# reload"), as tools/deps.sh does

my ($made_policy, $nginx_pid, $installed, $made_db);

if (!-e $policy) {
    write_file($policy, "#!/bin/sh\nexit 101\n");
    chmod 0755, $policy;
    $made_policy = 1;
}

# whatever happens, the machine is left as it was

sub cleanup {
    stop_nginx();

    if ($installed) {
        system("apt-get purge -y -qq @packages >$tmp/cleanup.log 2>&1");
        undef $installed;
    }

    if ($made_db) {
        system('rm', '-rf', $db, $secret);
        undef $made_db;
    }

    unlink($policy) if $made_policy;
    undef $made_policy;
}

END { cleanup() }

$SIG{INT} = $SIG{TERM} = $SIG{HUP} = sub { exit 1 };

# the system nginx, from /etc/nginx/nginx.conf with its pid file, logs
# and sites moved to the test's directory (the default site listens on
# port 80)

my $conf = Apikey::Harness::slurp('/etc/nginx/nginx.conf');
my $n = 0;

$n += $conf =~ s{^(\s*)pid\s+[^;]+;}{$1pid $tmp/nginx.pid;}m;
$n += $conf =~ s{^(\s*)error_log\s+[^;]+;}
                {$1error_log $tmp/logs/error.log notice;}m;
$n += $conf =~ s{^(\s*)access_log\s+[^;]+;}{$1access_log off;}m;
$n += $conf =~ s{include\s+/etc/nginx/sites-enabled/\*;}
                {include $tmp/sites/*;};

plan(skip_all => '/etc/nginx/nginx.conf is not the one Debian ships '
                 . '(pid, error_log, access_log, sites-enabled)')
    unless $n == 4 && $conf =~ m{include /etc/nginx/modules-enabled/\*.conf;};

mkdir "$tmp/sites";
write_file("$tmp/nginx.conf", $conf);
chmod 0644, "$tmp/nginx.conf";

my $open_port = $t->port(0);

write_file("$tmp/sites/open", <<"EOF");
server {
    listen 127.0.0.1:$open_port;
    location / {
        return 200 "open\\n";
    }
}
EOF

sub start_nginx {
    my $pid = fork() // die "fork: $!";

    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', "$tmp/logs/stderr.log";
        open STDERR, '>&', \*STDOUT;
        exec $nginx, '-e', "$tmp/logs/error.log", '-c', "$tmp/nginx.conf",
             '-g', 'daemon off;'
            or die "exec: $!";
    }

    $nginx_pid = $pid;
}

sub stop_nginx {
    my $pid = $nginx_pid or return;

    undef $nginx_pid;
    kill 'QUIT', $pid;

    for (1 .. 100) {
        return if waitpid($pid, WNOHANG) == $pid;
        sleep 0.05;
    }

    kill 'KILL', $pid;
    waitpid($pid, 0);
}

# the workers of the master, and whether they map the module

sub workers {
    return map { /(\d+)/ ? $1 : () } `pgrep -P $nginx_pid`;
}

sub module_mapped {
    my @w = workers() or return 0;

    for my $w (@w) {
        my $maps = Apikey::Harness::slurp("/proc/$w/maps");
        return 0 unless $maps =~ /ngx_http_apikey_module\.so/;
    }

    return 1;
}

# a reload: SIGHUP, then the old workers gone and the new ones up

sub reload_nginx {
    my %old = map { $_ => 1 } workers();

    kill 'HUP', $nginx_pid;

    my $end = time() + 30;

    while (time() < $end) {
        my @w = workers();
        return 1 if @w && !grep { $old{$_} } @w;
        sleep 0.1;
    }

    return 0;
}

sub wait_port {
    my ($port) = @_;

    for (1 .. 200) {
        my $r = eval { http_get($port, '/') };
        return $r if $r && $r->{status};
        sleep 0.05;
    }

    return;
}

sub run {
    my ($cmd) = @_;

    my $out = `$cmd 2>&1`;

    return ($? >> 8, $out);
}

start_nginx();

my $r = wait_port($open_port);
ok($r, 'system nginx started') or BAIL_OUT('nginx did not start: '
    . Apikey::Harness::slurp("$tmp/logs/error.log"));

my $open_before = http_get($open_port, '/');
is($open_before->{status} . ' ' . $open_before->{body}, "200 open\n",
   'open site before the packages');

# README.md's install steps, as a new user runs them, in a copy of the
# tree (without the builds and the packages made there)

my $readme = $ENV{APIKEY_README} || "$root/README.md";
my @readme = grep { $_->[0] eq 'sh' } readme_blocks($readme, 'Install');

my $src = "$tmp/src";

mkdir $src;
system("tar -C $root --exclude=./.git --exclude='./build*' "
       . "--exclude='./*.deb' -cf - . | tar -C $src -xf -") == 0
    or die "copy: $?";

# apt as a terminal user answers it, without the prompt; never the
# network (the dependencies are installed)

write_file("$tmp/apt.conf", <<'EOF');
APT::Get::Assume-Yes "true";
DPkg::Lock::Timeout "300";
Acquire::Languages "none";
EOF

$ENV{APT_CONFIG} = "$tmp/apt.conf";
$ENV{DEBIAN_FRONTEND} = 'noninteractive';

my $block = @readme ? $readme[0][1] : $steps;

write_file("$tmp/steps.sh", $block);

my $t0 = time();
$installed = 1;
my ($rc, $out) = run("cd $src && bash -e -x $tmp/steps.sh");
is($rc, 0, (@readme ? "README.md's" : "the test's") . ' install steps ran')
    or diag($out);
diag(sprintf 'install steps: %.0f s', time() - $t0);

SKIP: {
    skip('README.md has no "## Install" section with a ```sh block yet: '
         . 'the same steps, kept in this test, ran instead', 1) if !@readme;
    pass("README.md's install steps are the ones run");
}

for my $p (@packages) {
    like(`dpkg-query -W -f '\${Status} \${Version}' $p 2>&1`,
         qr/^install ok installed \d+\.\d+\.\d+$/, "$p installed");
}

my ($version) = Apikey::Harness::slurp("$root/tools/apikeyctl/actl.h")
    =~ /^#define ACTL_VERSION\s+"([^"]+)"/m;

is(`dpkg-query -W -f '\${Version}' libnginx-mod-http-apikey`, $version,
   'package version is ACTL_VERSION');

# lintian: no error; warnings and the rest for the report

my @changes = glob("$src/build/deb/*.changes");

$t0 = time();
($rc, $out) = run("TMPDIR=$tmp lintian --info @changes");
diag(sprintf 'lintian: %.0f s', time() - $t0);
unlike($out, qr/^E: /m, 'lintian: no error') or diag($out);
diag("lintian: $_") for grep { /^[WIP]: / } split /\n/, $out;
diag('lintian: no tag') unless $out =~ /^[EWIP]: /m;

# the module depends on the ABI of this nginx, as Debian's own modules do

my ($abi) = Apikey::Harness::slurp(
    '/usr/share/nginx/src/debian/libnginx-mod.abisubstvars')
    =~ /^nginx:abi=(\S+)/m;

like(`dpkg-query -W -f '\${Depends}' libnginx-mod-http-apikey`,
     qr/(^|, )\Q$abi\E(,|$)/, "module depends on $abi");

# what each package installed: not its directories, nor those the
# system has as links to directories (/lib with merged /usr)

my %files;

for my $p (@packages) {
    $files{$p} = [ grep { (-e $_ || -l $_) && !-d $_ }
                   map { chomp; $_ } `dpkg -L $p` ];
}

is_deeply([ sort @{$files{'libnginx-mod-http-apikey'}} ], [
    '/usr/lib/nginx/modules/ngx_http_apikey_module.so',
    '/usr/share/doc/libnginx-mod-http-apikey/README.md.gz',
    '/usr/share/doc/libnginx-mod-http-apikey/changelog.gz',
    '/usr/share/doc/libnginx-mod-http-apikey/copyright',
    $example,
    $snippet,
], 'module package files');

is_deeply([ sort @{$files{apikeyctl}} ], [
    '/lib/systemd/system/apikeyctl-follow@.service',
    '/usr/sbin/apikeyctl',
    '/usr/share/bash-completion/completions/apikeyctl',
    '/usr/share/doc/apikeyctl/changelog.gz',
    '/usr/share/doc/apikeyctl/copyright',
    '/usr/share/man/man1/apikeyctl.1.gz',
], 'apikeyctl package files');

is(Apikey::Harness::slurp($snippet),
   "load_module modules/ngx_http_apikey_module.so;\n", 'snippet');
is(readlink($link), $snippet, 'module enabled in modules-enabled');

ok(!-e $db && !-e $secret, 'apikeyctl made no database nor secret');

# nginx -t with the system configuration: the module loaded through
# modules-enabled

($rc, $out) = run("$nginx -t");
is($rc, 0, 'nginx -t') or diag($out);

($rc, $out) = run("$nginx -T");
like($out, qr{^# configuration file \Q$link\E:\n
                \Qload_module modules/ngx_http_apikey_module.so;\E$}mx,
     'nginx -T shows the snippet through modules-enabled');

# the running nginx: untouched by the install (no restart, no reload),
# then reloaded with the module and no "apikey on": the same answers

ok(kill(0, $nginx_pid) && !module_mapped(), 'running nginx not reloaded');

my $open = http_get($open_port, '/');
is($open->{status} . ' ' . $open->{body}, "200 open\n",
   'open site after the install');

ok(reload_nginx(), 'nginx reloaded');

my $end = time() + 10;
sleep 0.1 until module_mapped() || time() > $end;
ok(module_mapped(), 'workers have the module loaded');

$open = http_get($open_port, '/');
is($open->{status} . ' ' . $open->{body}, "200 open\n",
   'open site with the module loaded');
ok(!$open->{headers}{'www-authenticate'}, 'no challenge');
is(join(',', sort keys %{$open->{headers}}),
   join(',', sort keys %{$open_before->{headers}}), 'same headers');

# the example site: its database made by the installed apikeyctl

$made_db = 1;

($rc, $out) = run('/usr/sbin/apikeyctl init --user www-data');
is($rc, 0, 'apikeyctl init --user www-data') or diag($out);
is(sprintf('%04o', (stat $secret)[2] & 07777), '0600', 'secret mode');
my @st = stat "$db/data.mdb";
is(getpwuid($st[4]) . ':' . getgrgid($st[5]) . sprintf(' %04o', $st[2] & 07777),
   'root:www-data 0640', 'database readable by the workers');

($rc, my $key) = run('/usr/sbin/apikeyctl gen --id pkg-1 --subject pkg');
is($rc, 0, 'apikeyctl gen');
chomp $key;
like($key, qr/^ak_[0-9A-Za-z]{38}$/, 'a key');

my $site_port = $t->port(1);
my $upstream_port = $t->port(2);

$t->echo_upstream(2);

my $site = Apikey::Harness::slurp($example);
$n = 0;
$n += $site =~ s{^(\s*)listen\s+8080;}{$1listen 127.0.0.1:$site_port;}m;
$n += $site =~ s{server 127\.0\.0\.1:8000;}
                {server 127.0.0.1:$upstream_port;};
$n += $site =~ s{access_log /var/log/nginx/api-access\.log}
                {access_log $tmp/logs/apikey.log};
is($n, 3, 'example site: port, backend and log changed');

write_file("$tmp/sites/apikey", $site);

ok(reload_nginx(), 'nginx reloaded with the example site');
ok(wait_port($site_port), 'example site listens');

$r = http_get($site_port, '/api/x', 'X-API-Key' => $key);
is($r->{status}, 200, 'valid key: 200');
like($r->{body}, qr/^X-Consumer-Id: pkg-1\r$/mi, 'identity forwarded');
unlike($r->{body}, qr/\Q$key\E|x-api-key/i, 'key hidden from the backend');
like($r->{body}, qr/^Host: localhost\r$/mi,
     'the backend gets the Host the client sent');

$r = http_get($site_port, '/api/x');
is($r->{status}, 401, 'no key: 401');
like(join(' ', @{$r->{headers}{'www-authenticate'} // []}),
     qr/^ApiKey realm=/, 'challenge');

$r = http_get($site_port, '/api/x', 'X-API-Key' => "${key}x");
is($r->{status}, 401, 'wrong key: 401');

# the per-key access log: lines written at the end of the request

$end = time() + 10;
sleep 0.1 until time() > $end
    || Apikey::Harness::slurp("$tmp/logs/apikey.log") =~ tr/\n// >= 3;

my $log = Apikey::Harness::slurp("$tmp/logs/apikey.log");
like($log, qr{"GET\ /api/x"\ 200\ \d+\ [\d.]+\ key=valid\ id=pkg-1
             \ subject=pkg\ plan=-\ hint=ak_\S+\n}x,
     'access log: valid key');
like($log, qr{"GET /api/x" 401 \d+ [\d.]+ key=missing id=- },
     'access log: missing key');
like($log, qr{"GET /api/x" 401 \d+ [\d.]+ key=(unknown|malformed) id=- },
     'access log: wrong key');

my $logs = join '', map { Apikey::Harness::slurp($_) }
                    glob("$tmp/logs/*.log");
unlike($logs, qr/\Q$key\E/, 'key in no log');
unlike($logs, qr/\[(alert|emerg|crit)\]|signal \d+ .*exited/,
       'no alert in the error log');

stop_nginx();

# removed, the module is disabled and nginx without it still starts;
# installed again, enabled again (dh_nginx's ".removed" link)

($rc, $out) = run('apt-get remove -y libnginx-mod-http-apikey');
is($rc, 0, 'apt-get remove') or diag($out);
ok(!-e '/usr/lib/nginx/modules/ngx_http_apikey_module.so',
   'module file removed');
is(readlink("$link.removed"), $snippet, 'link kept as .removed');
ok(!-l $link, 'module disabled');

($rc, $out) = run("$nginx -t");
is($rc, 0, 'nginx -t without the module') or diag($out);

($rc, $out) = run("cd $src && apt install "
                  . './libnginx-mod-http-apikey_*.deb');
is($rc, 0, 'apt install again') or diag($out);
is(readlink($link), $snippet, 'module enabled again');
ok(!-l "$link.removed", 'no .removed link left');

# the purge: nothing of the packages left

($rc, $out) = run("apt-get purge -y @packages");
is($rc, 0, 'apt-get purge') or diag($out);
undef $installed;

for my $p (@packages) {
    unlike(`dpkg-query -W -f '\${Status}' $p 2>/dev/null`,
           qr/ installed|config-files/, "$p purged");

    is_deeply([ grep { -e $_ || -l $_ } @{$files{$p}} ], [],
              "no file of $p left");
}

ok(!-e $link && !-l $link && !-l "$link.removed",
   'no link in modules-enabled');

system('rm', '-rf', $db, $secret);
undef $made_db;

unlink($policy) if $made_policy;
undef $made_policy;

is_deeply(snapshot(), $before, 'machine as it was');
diag(sprintf 'packages test: %.0f s', time() - $started);

done_testing();
