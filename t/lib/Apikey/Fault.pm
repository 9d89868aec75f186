package Apikey::Fault;

# A database made unusable on purpose while nginx serves under load
# (issue 9), for t/apikey_fault_*.t: one load on a protected location
# with valid, revoked, unknown, expired and malformed keys, another on an
# unprotected one that must always answer 200, and the outages one after
# the other.  Core Perl only.
#
#   my $f = Apikey::Fault->new($t, workers => 2, db => $path);
#
#       writes the configuration (apikey_db $path, "/" protected, "/open/"
#       not), makes the keys of the test's own database ($t->db: V valid,
#       R revoked, E expired; U unknown, M malformed), starts nginx and
#       both loads.
#
#   my $o = $f->outage(name => 'deleted', break => sub { ... },
#                      fix => sub { ... }, %opts);
#
#       the database broken by break, left so for a while, fixed by fix:
#       503 allowed from break to a few seconds after fix (the retries of
#       the workers, about once a second), and only 503 (401 for a
#       malformed key, which needs no database) from a few seconds after
#       break to fix; then every worker answers without 503.  Options:
#       steady (2: seconds of the outage after the workers noticed it),
#       log (patterns of the error lines that must be there), also
#       (those that may be), errors (1: error lines a worker at most),
#       notices (1: notice lines a worker at most, "usable again").
#       Returns the requests of the outage, those of its steady part by
#       status, and the error-log lines it wrote.
#
#   $f->finish();
#
#       stops the loads and checks them, checks that no worker was
#       replaced and that nginx was never reloaded, stops nginx.

use strict;
use warnings;

use Test::More ();
use Time::HiRes qw(sleep time);

use Apikey::Harness qw(scaled);
use Apikey::Load;

# the workers notice a change of the files at most about a second after
# it (ngx_time() in whole seconds: up to two), and retry a database that
# is not usable about once a second; a margin for a busy machine

my $settle = 4;

sub new {
    my ($class, $t, %opts) = @_;

    my $self = bless { t => $t, workers => 2, clients => 3, %opts }, $class;
    my $dir = $t->prefix();

    $self->{db} //= $t->db();

    $t->init_db();

    my (%key, $csv);

    $key{"V$_"} = $t->gen('--id', "V$_") for 1 .. 4;
    $key{"R$_"} = $t->gen('--id', "R$_") for 1 .. 3;
    $key{"E$_"} = 'fault-E' . $_ . '-' . word() for 1 .. 2;

    $t->ctl_ok({ input => "id,key,expires\n"
                          . join('', map { "E$_,$key{\"E$_\"},"
                                           . "2020-01-01T00:00:00Z\n" }
                                     1 .. 2) },
               'import', '-');
    $t->ctl_ok('revoke', "R$_") for 1 .. 3;

    $t->init_db({ db => "$dir/db-unknown" });

    my @unknown = split /\n/, $t->ctl_ok({ db => "$dir/db-unknown" }, 'gen',
                                          '--count', '2');
    push @unknown, 'fault-U-' . word();

    (my $badsum = $key{V1}) =~ s/(.)$/$1 eq 'A' ? 'B' : 'A'/e;
    my @malformed = ($badsum, 'ak_1', 'short');

    $self->{key} = \%key;

    $t->write_config(<<"EOF", workers => $self->{workers});
    apikey_secret %%SECRET%%;

    server {
        listen 127.0.0.1:%%PORT%% reuseport;

        location / {
            apikey on;
            apikey_db $self->{db};
            add_header X-Worker \$pid always;
            empty_gif;
        }

        location /open/ {
            empty_gif;
        }
    }
EOF

    $t->start();
    $t->wait_workers();

    $self->{master} = $t->{pid};
    $self->{pids} = [ $self->workers() ];

    my $load = Apikey::Load->new(port => $t->port(0), dir => "$dir/load",
                                 clients => $self->{clients},
                                 delay => 0.001);

    $load->key("V$_", $key{"V$_"}, 'valid', 200) for 1 .. 4;
    $load->key("R$_", $key{"R$_"}, 'revoked', 401) for 1 .. 3;
    $load->key("E$_", $key{"E$_"}, 'expired', 401) for 1 .. 2;
    $load->key("U$_", $unknown[$_ - 1], 'unknown', 401) for 1 .. @unknown;
    $load->key("M$_", $malformed[$_ - 1], 'malformed', 401)
        for 1 .. @malformed;

    my $open = Apikey::Load->new(port => $t->port(0), dir => "$dir/open",
                                 clients => 1, uri => '/open/',
                                 delay => 0.002);

    $open->key('O1', $key{V1}, 'open', 200);
    $open->key('O2', 'fault-O2-' . word(), 'open', 200);

    $self->{load} = $load;
    $self->{open} = $open;

    $load->start();
    $open->start();
    $load->wait_requests(300);

    return $self;
}

sub load { $_[0]->{load} }
sub key { $_[0]->{key}{$_[1]} }

sub word {
    return join('', map { ('a' .. 'z', 0 .. 9)[int rand 36] } 1 .. 16);
}

# the workers: the master's children

sub workers {
    my ($self) = @_;

    my @pids;

    for my $stat (glob '/proc/[0-9]*/stat') {
        my ($pid, $ppid) = Apikey::Harness::slurp($stat)
                           =~ /^(\d+) \(.*\) \S+ (\d+)/s or next;
        push @pids, $pid if $ppid == $self->{t}{pid};
    }

    return sort { $a <=> $b } @pids;
}

# the answers of the load to requests sent and answered between two
# times: by status, and by status for the keys that need the database

sub answers {
    my ($self, $from, $to) = @_;

    my (%all, %db, $n, $first, $last);

    for my $c (1 .. $self->{clients}) {
        open my $fh, '<', "$self->{load}{dir}/client.$c" or next;

        while (<$fh>) {
            my ($sent, $got, $id, $status) = split;
            next if $sent < $from || $got > $to;

            $n++;
            $all{$status}++;
            $db{$status}++ unless $id =~ /^M/;

            next unless $status == 503;

            $first = $got if !defined $first || $got < $first;
            $last = $got if !defined $last || $got > $last;
        }

        close $fh;
    }

    return { requests => $n // 0, all => \%all, db => \%db,
             first => $first, last => $last };
}

sub counts {
    my ($h) = @_;
    return join(', ', map { "$_: $h->{$_}" } sort keys %$h) || 'none';
}

sub outage {
    my ($self, %c) = @_;

    my $t = $self->{t};
    my $load = $self->{load};
    my $name = $c{name};

    my $offset = length $t->error_log();
    my $from = time();

    $c{break}->();

    my $broken = time();

    # the workers notice within a couple of seconds; then only 503

    my $steady = time() + scaled($settle);

    sleep 0.1 while time() < $steady;
    $load->wait_requests(200);

    my $end = time() + scaled($c{steady} // 2);

    sleep 0.1 while time() < $end;

    my $fixing = time();

    $c{fix}->();

    my $fixed = time();

    my $to = time() + scaled($settle);

    $load->unusable($from, $to);

    sleep 0.1 while time() < $to;
    $load->wait_requests(300);

    # every worker recovered, an idle one too (it opens the database
    # again on its next request): new connections until each answered

    my (%seen, @failed);

    for (1 .. 400) {
        my $r = $t->get('/', 'X-API-Key' => $self->{key}{V1});
        my $pid = $r->{headers}{'x-worker'}[0] // '?';

        $seen{$pid} = 1;
        push @failed, "$pid: $r->{status}" if $r->{status} == 503;

        last if keys %seen >= $self->{workers};
    }

    Test::More::is(scalar keys %seen, $self->{workers},
                   "$name: every worker answered after it");
    Test::More::is(join(', ', @failed), '',
                   "$name: no 503 from any worker after it");

    my $all = $self->answers($from, $to);
    my $s = $self->answers($steady, $fixing);

    Test::More::cmp_ok($s->{requests}, '>=', 100,
                       "$name: requests while not usable");
    Test::More::is($s->{all}{200} // 0, 0, "$name: no 200 while not usable")
        or Test::More::diag(counts($s->{all}));
    Test::More::is(counts($s->{db}), "503: " . ($s->{db}{503} // 0),
                   "$name: 503 for every key that needs the database");

    # the lines logged from break to recovery, by worker

    my $log = substr($t->error_log(), $offset);
    my @lines = grep { /^\S+ \S+ \[(?!info|debug)\w+\] .*apikey/ }
                split /\n/, $log;
    my (%errors, %notices);

    for (@lines) {
        my ($level, $pid) = /^\S+ \S+ \[(\w+)\] (\d+)#/ or next;
        ($level eq 'notice' ? \%notices : \%errors)->{$pid}++;
    }

    Test::More::diag(sprintf("%s: %d requests from break to recovery"
                             . " (%s), %d in the steady outage (%s);"
                             . " %d log lines; 503 from %.2f s after the"
                             . " break to %.2f s after the fix",
                             $name, $all->{requests}, counts($all->{all}),
                             $s->{requests}, counts($s->{all}),
                             scalar @lines, ($all->{first} // $broken)
                                            - $broken,
                             ($all->{last} // $fixed) - $fixed));
    Test::More::diag("  " . s/, client: .*//r) for @lines;

    # one line a worker for each cause (the workers that noticed it; an
    # idle one may not): no message twice from a worker, at most
    # $c{errors} (1) errors and $c{notices} (1: usable again) notices

    my (%twice, $max_errors, $max_notices);

    for (@lines) {
        my ($pid, $msg) = /^\S+\ \S+\ \[\w+\]\ (\d+)\#\d+:\ (?:\*\d+\ )?
                           (.*?) (?:,\ client:\ .*)?$/x or next;
        $twice{"$pid $msg"}++;
    }

    $max_errors = (sort { $b <=> $a } values %errors)[0] // 0;
    $max_notices = (sort { $b <=> $a } values %notices)[0] // 0;

    Test::More::is(join("\n", grep { $twice{$_} > 1 } sort keys %twice), '',
                   "$name: no message logged twice by a worker");
    Test::More::cmp_ok(scalar keys %errors, '>=', 1, "$name: logged");
    Test::More::cmp_ok($max_errors, '<=', $c{errors} // 1,
                       "$name: error lines a worker");
    Test::More::cmp_ok($max_notices, '<=', $c{notices} // 1,
                       "$name: notice lines a worker");
    Test::More::is(join(' ', grep { !$notices{$_} } sort keys %errors), '',
                   "$name: each worker that logged it logged its recovery");

    for my $re (@{$c{log} // []}) {
        Test::More::ok((grep { /\[crit\].*$re/ } @lines), "$name: logged as"
                       . " expected") or Test::More::diag("no line like $re");
    }

    Test::More::is(join("\n", grep { !/\[notice\]/
                                     && !match($_, $c{log}, $c{also}) }
                                   @lines), '',
                   "$name: no other error line") if $c{log};

    return { all => $all, steady => $s, lines => \@lines,
             errors => \%errors, notices => \%notices };
}

sub match {
    my ($line, @res) = @_;
    return grep { $line =~ $_ } map { @{$_ // []} } @res;
}

sub finish {
    my ($self) = @_;

    my $t = $self->{t};

    $self->{load}->stop();
    $self->{open}->stop();

    my $s = $self->{load}->ok(name => 'protected', min => 1000,
                              retried => 0);

    $self->{open}->ok(name => 'unprotected', min => 300, retried => 0);

    Test::More::is($t->{pid}, $self->{master}, 'the same master');
    Test::More::is(join(' ', $self->workers()), join(' ', @{$self->{pids}}),
                   'the same workers: recovered without a reload');

    $t->stop();

    Test::More::unlike($t->error_log(), qr/reconfiguring|signal 1 \(SIGHUP\)/,
                       'never reloaded');

    return $s;
}

1;
