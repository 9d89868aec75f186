package Apikey::Harness;

# A small harness for the integration tests, modelled on nginx-tests:
# a temporary prefix, a real nginx binary loading the built module, a
# real database made by the real apikeyctl, real HTTP over 127.0.0.1.
# Core Perl only.

use strict;
use warnings;

use Exporter qw(import);
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::INET;
use POSIX qw(WNOHANG);
use Test::More;
use Test2::API qw(test2_add_callback_testing_done);
use Time::HiRes qw(sleep time);

our @EXPORT_OK = qw(http_get http_raw write_file scaled);

my $root = abs_path(dirname(__FILE__) . '/../../..');

# nginx itself reads NGINX (inherited listening sockets): never pass it on
delete $ENV{NGINX};

# TEST_NGINX_VALGRIND=1 (make test-valgrind): nginx runs under valgrind
# memcheck, one log per process in logs/valgrind.<pid>.log, checked by
# check_log(); everything is slower, so waits go through scaled()

my $valgrind = $ENV{TEST_NGINX_VALGRIND};

sub scaled {
    my ($seconds) = @_;
    return $valgrind ? $seconds * 20 : $seconds;
}

# every database a test makes with "apikeyctl init" or "backup" is
# checked with "apikeyctl check" when the test is done, one more test for
# each, before the plan is printed; no_check() leaves out one damaged on
# purpose

my @databases;

test2_add_callback_testing_done(\&check_databases);

sub new {
    my ($class, %opts) = @_;

    my $build = $ENV{APIKEY_BUILD} || "$root/build";
    my $self = bless {
        nginx     => $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx',
        module    => "$build/ngx_http_apikey_module.so",
        apikeyctl => "$build/apikeyctl",
        root      => $root,
        %opts,
    }, $class;

    $self->{prefix} = tempdir('apikey-test-XXXXXX', TMPDIR => 1,
                              CLEANUP => !$ENV{TEST_APIKEY_LEAVE});
    chmod 0755, $self->{prefix};
    mkdir "$self->{prefix}/logs";

    $self->{db} = "$self->{prefix}/db";
    $self->{secret} = "$self->{prefix}/apikey.secret";
    $self->{ports} = [];

    return $self;
}

# skip the whole file, with a reason, when something it needs is missing

sub require_all {
    my ($self) = @_;

    plan(skip_all => "no nginx binary at $self->{nginx}")
        unless -x $self->{nginx};
    plan(skip_all => "module not built at $self->{module} (run make)")
        unless -f $self->{module};
    plan(skip_all => "apikeyctl not built at $self->{apikeyctl} (run make)")
        unless -x $self->{apikeyctl};

    return $self;
}

sub require_apikeyctl {
    my ($self) = @_;

    plan(skip_all => "apikeyctl not built at $self->{apikeyctl} (run make)")
        unless -x $self->{apikeyctl};

    return $self;
}

# skip the whole file when the nginx binary lacks a module the test
# configures, named as configure names it: http_v2, http_auth_request...
# A module is there when "nginx -V" shows --with-<name>_module (not
# =dynamic: the tests load only ours), or when it is one that nginx builds
# by default and it was not configured --without-<name>_module.

my %optional = map { $_ => 1 } qw(http_ssl http_v2 http_v3 http_realip
    http_addition http_xslt http_image_filter http_geoip http_sub http_dav
    http_flv http_mp4 http_gunzip http_gzip_static http_auth_request
    http_random_index http_secure_link http_degradation http_slice
    http_stub_status http_perl mail stream);

sub require_modules {
    my ($self, @modules) = @_;

    my $v = $self->{nginx_V} //= `$self->{nginx} -V 2>&1`;

    for my $m (@modules) {
        next if $v =~ /--with-${m}_module(?!=)/;

        plan(skip_all => "$self->{nginx} has no ${m} module built in")
            if $optional{$m} || $v =~ /--without-${m}_module/;
    }

    return $self;
}

sub prefix { $_[0]->{prefix} }
sub db { $_[0]->{db} }
sub secret { $_[0]->{secret} }

# workers run as nobody when the tests run as root, as in CI

sub worker_user {
    return $> == 0 ? 'nobody' : undef;
}

# a free TCP port on 127.0.0.1: bind to 0, read it back, release it

sub port {
    my ($self, $n) = @_;

    $n //= 0;

    while (@{$self->{ports}} <= $n) {
        my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1',
                                      LocalPort => 0, Proto => 'tcp',
                                      ReuseAddr => 1)
            or die "cannot find a free port: $!";
        push @{$self->{ports}}, $s->sockport();
        close $s;
    }

    return $self->{ports}[$n];
}

# apikeyctl: returns (exit code, stdout, stderr); stdin from $opts{input}

sub ctl {
    my ($self, @args) = @_;

    my %opts;
    %opts = %{shift @args} if ref $args[0] eq 'HASH';

    my $dir = $self->{prefix};
    my ($in, $out, $err) = map { "$dir/ctl.$_" } qw(in out err);

    open my $fh, '>', $in or die "$in: $!";
    print $fh $opts{input} // '';
    close $fh;

    my @cmd = ($self->{apikeyctl}, '-d', $opts{db} // $self->{db},
               '-s', $opts{secret} // $self->{secret}, @args);

    my $pid = fork() // die "fork: $!";

    if ($pid == 0) {
        open STDIN, '<', $in or die;
        open STDOUT, '>', $out or die;
        open STDERR, '>', $err or die;
        exec @cmd or die "exec $cmd[0]: $!";
    }

    waitpid($pid, 0);
    my $rc = $? & 127 ? 128 + ($? & 127) : $? >> 8;

    # the databases made here, by init and by backup, are checked at
    # the end

    my $cmd = $args[0] // '';

    if ($rc == 0 && ($cmd eq 'init' || $cmd eq 'backup')) {
        $self->record_db($cmd eq 'init' ? $opts{db} // $self->{db}
                                        : $args[-1],
                         $opts{secret} // $self->{secret});
    }

    return ($rc, slurp($out), slurp($err));
}

# apikeyctl that must succeed; returns stdout

sub ctl_ok {
    my ($self, @args) = @_;

    my ($rc, $out, $err) = $self->ctl(@args);

    die "apikeyctl @args: exit $rc: $err" if $rc != 0;

    return $out;
}

sub init_db {
    my ($self, @args) = @_;

    # another database than the test's own: init_db({ db => DIR })

    my @opts;
    @opts = (shift @args) if ref $args[0] eq 'HASH';

    my $user = worker_user();
    push @args, '--user', $user if defined $user;

    # memcheck takes seconds to map the default 8 GB at each open, and
    # workers reopen a damaged environment every second; a test's own
    # --map-size, later in the arguments, still wins

    unshift @args, '--map-size', '256m' if $valgrind;

    return $self->ctl_ok(@opts, 'init', @args);
}

# the databases "check" runs on when the test is done

sub record_db {
    my ($self, $db, $secret) = @_;

    return if grep { $_->{db} eq $db } @databases;

    push @databases, { db => $db, secret => $secret,
                       apikeyctl => $self->{apikeyctl},
                       prefix => $self->{prefix} };
}

# a database damaged on purpose: not checked at the end ($t->db if none)

sub no_check {
    my ($self, $db) = @_;

    $db //= $self->{db};

    $_->{skip} = 1 for grep { $_->{db} eq $db } @databases;

    return $self;
}

# run by Test2 when done_testing() is called, before the plan is printed:
# one test per database that still exists; with a fixed plan ("plan
# tests => N") only a failure is added, and the count fails with it

sub check_databases {
    my ($trace, $hub) = @_;

    my $plan = $hub->plan // '';
    return if $plan eq 'SKIP';

    for my $d (@databases) {
        next if $d->{skip} || !-f "$d->{db}/data.mdb";

        my $out = '';
        my $pid = open(my $fh, '-|') // die "fork: $!";

        if ($pid == 0) {
            open STDIN, '<', '/dev/null';
            open STDERR, '>&', \*STDOUT;
            exec $d->{apikeyctl}, '-d', $d->{db}, '-s', $d->{secret}, 'check'
                or die "exec $d->{apikeyctl}: $!";
        }

        { local $/; $out = <$fh> // ''; }
        close $fh;

        my $ok = $? == 0;
        next if $ok && $plan =~ /^\d+$/;

        (my $name = $d->{db}) =~ s{^\Q$d->{prefix}\E/}{};

        ok($ok, "check clean: $name")
            or diag("apikeyctl check $d->{db}: exit " . ($? >> 8) . "\n$out");
    }
}

# generate one key, returns the plaintext key

sub gen {
    my ($self, @args) = @_;

    my $key = $self->ctl_ok('gen', @args);
    chomp $key;

    return $key;
}

# the configuration: %%PORT%%, %%PORT_1%%..., %%DB%%, %%SECRET%%,
# %%PREFIX%% are replaced; the main context is made here, with
# $opts{workers} worker processes (1), $opts{main} added to it; the
# workers run as $opts{user} and its group of the same name when given
# (as root), else as worker_user()

sub write_config {
    my ($self, $http, %opts) = @_;

    my $user = worker_user();
    my $workers = $opts{workers} // 1;
    my $conf = '';

    if (defined $opts{user}) {
        $conf .= "user $opts{user};\n";

    } elsif (defined $user) {
        $conf .= "user $user nogroup;\n";
    }

    $conf .= <<"EOF";
load_module $self->{module};
daemon off;
master_process on;
worker_processes $workers;
pid $self->{prefix}/nginx.pid;
error_log $self->{prefix}/logs/error.log info;
EOF
    $conf .= $opts{main} // '';
    $conf .= "events { worker_connections 256; }\n";
    $conf .= "http {\n";
    $conf .= "    access_log off;\n" unless $opts{access_log};
    $conf .= "    client_body_temp_path $self->{prefix}/tmp;\n";
    $conf .= "    proxy_temp_path $self->{prefix}/tmp;\n";
    $conf .= $http;
    $conf .= "}\n";

    $conf =~ s/%%PORT_(\d+)%%/$self->port($1)/ge;
    $conf =~ s/%%PORT%%/$self->port(0)/ge;
    $conf =~ s/%%DB%%/$self->{db}/g;
    $conf =~ s/%%SECRET%%/$self->{secret}/g;
    $conf =~ s/%%PREFIX%%/$self->{prefix}/g;

    mkdir "$self->{prefix}/tmp";
    chmod 0777, "$self->{prefix}/tmp";

    open my $fh, '>', "$self->{prefix}/nginx.conf" or die $!;
    print $fh $conf;
    close $fh;

    return $self;
}

# nginx -t: returns (exit code, output)

sub nginx_test {
    my ($self) = @_;

    my $out = `$self->{nginx} -t -p $self->{prefix}/ -e $self->{prefix}/logs/test.log -c $self->{prefix}/nginx.conf 2>&1`;

    return ($? >> 8, $out);
}

sub start {
    my ($self) = @_;

    my $pid = fork() // die "fork: $!";

    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', "$self->{prefix}/logs/stderr.log";
        open STDERR, '>&', \*STDOUT;
        exec valgrind_cmd($self), $self->{nginx}, '-p', "$self->{prefix}/",
            '-e', "$self->{prefix}/logs/error.log",
            '-c', "$self->{prefix}/nginx.conf"
            or die "exec: $!";
    }

    $self->{pid} = $pid;

    # wait for the first port to accept, up to 5 seconds

    for (1 .. scaled(100)) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $self->port(0));
        if ($s) {
            close $s;
            $self->wait_workers() if $valgrind;
            return $self;
        }

        if (waitpid($pid, WNOHANG) == $pid) {
            delete $self->{pid};
            die "nginx exited at start:\n" . $self->error_log()
                . slurp("$self->{prefix}/logs/stderr.log");
        }

        sleep 0.05;
    }

    die "nginx did not start:\n" . $self->error_log();
}

sub stop {
    my ($self) = @_;

    my $pid = delete $self->{pid} or return $self;

    kill 'QUIT', $pid;

    for (1 .. scaled(100)) {
        return $self if waitpid($pid, WNOHANG) == $pid;
        sleep 0.05;
    }

    kill 'TERM', $pid;
    sleep 0.5;
    kill 'KILL', $pid;
    waitpid($pid, 0);

    return $self;
}

sub DESTROY {
    my ($self) = @_;
    local $?;
    $self->stop() if $self->{pid};

    for my $pid (@{$self->{upstreams} // []}) {
        kill 'TERM', $pid;
        waitpid($pid, 0);
    }
}

sub error_log {
    my ($self) = @_;
    return slurp("$self->{prefix}/logs/error.log");
}

sub access_log {
    my ($self) = @_;
    return slurp("$self->{prefix}/logs/access.log");
}

# every integration test ends with this: no alert, no emerg, no crash

sub check_log {
    my ($self, %allow) = @_;

    my $log = $self->error_log();

    my @alerts = $log =~ /^.*\[alert\].*$/mg;
    @alerts = grep { !/$allow{alert}/ } @alerts if $allow{alert};

    is(join("\n", @alerts), '', 'no alerts in error log');
    is(join("\n", $log =~ /^.*\[emerg\].*$/mg), '', 'no emerg in error log');
    is(join("\n", $log =~ /^.*(?:exited\ on\ signal|Sanitizer|core\ dumped)
                           .*$/mgx),
       '', 'no crashes in error log');

    $self->check_valgrind() if $valgrind;
}

# valgrind's options: leaks at exit are nginx's (it frees little); any
# other error fails, wherever its stack: one the module causes may show
# only nginx's frames (a field it left unset in a pool allocation is
# read by the core); t/valgrind.supp is for errors of nginx or a library

sub valgrind_cmd {
    my ($self) = @_;

    return () unless $valgrind;

    return ('valgrind', '--tool=memcheck', '--leak-check=no',
            '--track-origins=yes', '--num-callers=40',
            '--trace-children=yes', '--error-exitcode=42', '--vgdb=no',
            "--suppressions=$root/t/valgrind.supp",
            "--log-file=$self->{prefix}/logs/valgrind.%p.log");
}

# the port accepts once the master listens; under valgrind a worker may
# take seconds more to start: wait until each sits in epoll_wait()

sub wait_workers {
    my ($self) = @_;

    my ($n) = slurp("$self->{prefix}/nginx.conf")
              =~ /^worker_processes\s+(\d+);/m;
    my $end = time() + scaled(5);

    while (time() < $end) {
        my $ready = grep { slurp("/proc/$_/wchan") =~ /epoll_wait/ }
                    $self->workers();

        return if $ready >= ($n // 1);
        sleep 0.1;
    }
}

# the workers: the children of the master (of $master if given: a
# master started by other means, as by a binary upgrade), sorted, the
# exited ones not yet reaped (zombies) left out

sub workers {
    my ($self, $master) = @_;

    $master //= $self->{pid};
    return () unless $master;

    my @pids;

    for my $stat (glob '/proc/[0-9]*/stat') {
        my ($pid, $state, $ppid) = slurp($stat)
                                   =~ /^(\d+) \(.*\) (\S+) (\d+)/s or next;
        push @pids, $pid if $ppid == $master && $state ne 'Z';
    }

    return sort { $a <=> $b } @pids;
}

sub check_valgrind {
    my ($self) = @_;

    my @errors;

    for my $file (glob "$self->{prefix}/logs/valgrind.*.log") {
        my $text = slurp($file);

        # an error is a block of "==pid== " lines ending with an empty one

        for my $block (split /^==\d+==\s*\n/m, $text) {
            next unless $block =~ /^==\d+==[ ](?:Invalid[ ](?:read|write|free)
                                    |Conditional[ ]jump
                                    |Use[ ]of[ ]uninitialised
                                    |Syscall[ ]param
                                    |Source[ ]and[ ]destination[ ]overlap
                                    |Mismatched[ ]free
                                    |Argument[ ].*[ ]of[ ]function)/mx;

            push @errors, $block;
        }
    }

    is(join('', @errors), '', 'no valgrind errors');
}

# a file of the tests' own, such as a secret: mode 0600

sub write_file {
    my ($file, $text) = @_;

    open my $fh, '>', $file or die "$file: $!";
    print $fh $text;
    close $fh;
    chmod 0600, $file;
}

sub slurp {
    my ($file) = @_;

    open my $fh, '<', $file or return '';
    local $/;
    my $s = <$fh>;
    close $fh;

    return $s // '';
}

# HTTP/1.0 over a fresh connection; returns a hash of status, headers
# (lowercased names, arrays of values), body and the raw response

sub http_raw {
    my ($port, $request) = @_;

    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Timeout => scaled(5))
        or die "connect: $!";

    print $s $request;

    my $raw = '';
    my $sel = IO::Select->new($s);

    while ($sel->can_read(scaled(5))) {
        my $n = sysread($s, my $buf, 65536);
        last unless $n;
        $raw .= $buf;
    }

    close $s;

    my ($head, $body) = split /\r\n\r\n/, $raw, 2;
    my %r = (raw => $raw, body => $body // '', headers => {});

    my @lines = split /\r\n/, $head // '';
    my $status_line = shift @lines // '';
    ($r{status}) = $status_line =~ m{^HTTP/\d\.\d (\d+)};
    $r{status} //= 0;

    for (@lines) {
        my ($k, $v) = /^([^:]+):\s*(.*)$/ or next;
        push @{$r{headers}{lc $k}}, $v;
    }

    return \%r;
}

sub http_get {
    my ($port, $uri, @headers) = @_;

    my $req = "GET $uri HTTP/1.0\r\nHost: localhost\r\n";

    while (my ($k, $v) = splice(@headers, 0, 2)) {
        $req .= "$k: $v\r\n";
    }

    return http_raw($port, "$req\r\n");
}

# the same, as a method on the first port

sub get {
    my ($self, $uri, @headers) = @_;
    return http_get($self->port(0), $uri, @headers);
}

# an upstream on port $n: one request per connection, answered with the
# raw bytes of its head (and appended to $record when given); stopped
# with the harness, and gone by itself after two minutes anyway

sub echo_upstream {
    my ($self, $n, $record) = @_;

    my $listen = IO::Socket::INET->new(Listen => 64,
                                       LocalAddr => '127.0.0.1',
                                       LocalPort => $self->port($n),
                                       Proto => 'tcp', ReuseAddr => 1)
        or die "upstream listen: $!";

    my $pid = fork() // die "fork: $!";

    if ($pid == 0) {
        alarm(120);

        while (my $c = $listen->accept()) {
            my $req = '';

            while ($req !~ /\r\n\r\n/) {
                my $got = sysread($c, my $buf, 65536);
                last unless $got;
                $req .= $buf;
            }

            if (defined $record && open my $fh, '>>', $record) {
                print $fh $req;
                close $fh;
            }

            print $c "HTTP/1.0 200 OK\r\n"
                     . "Content-Type: application/octet-stream\r\n"
                     . "Content-Length: " . length($req) . "\r\n\r\n$req";
            close $c;
        }

        POSIX::_exit(0);
    }

    close $listen;
    push @{$self->{upstreams}}, $pid;

    return $pid;
}

# retry a GET until $cond->($response) holds or $timeout seconds pass

sub wait_for {
    my ($self, $timeout, $cond, $uri, @headers) = @_;

    my $end = time() + scaled($timeout);
    my $r;

    while (1) {
        $r = $self->get($uri, @headers);
        return $r if $cond->($r) || time() > $end;
        sleep 0.1;
    }
}

1;
