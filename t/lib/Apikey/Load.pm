package Apikey::Load;

# A load that knows the right answer: client processes send keys to
# nginx over keep-alive HTTP/1.1 connections while the test changes the
# keys, and each answer is checked, at the end, against the state of its
# key at the moment it was in flight.  Core Perl only.
#
#   my $load = Apikey::Load->new(port => $port, dir => "$dir/load",
#                                clients => 4);
#
#       new options: port (required), dir (required, made if missing),
#       clients (4), uri ('/'), header ('X-API-Key'), host
#       ('localhost'), seconds (60: the clients stop by themselves
#       after that, scaled under valgrind), timeout (10: one answer),
#       delay (0: seconds each client waits after each answer, a load
#       lighter on a shared machine).
#
#   $load->key($id, $key, $class, $status);
#   $load->key($id, $key, $class, $status, weight => $n);
#
#       a key the clients send (any process may add one, also while the
#       load runs: the clients pick up new keys as they go); $class is
#       free text shown in the summary ("valid", "revoked", "unknown",
#       "expired", "malformed"...); $status the answer it gets before
#       any change: 200 or 401.  Ids and classes are words (no
#       spaces); keys may be anything printable, spaces included.
#       A weight of $n (1) makes the clients pick it $n times as often
#       as a key of weight 1 (a long load adds many keys that end
#       revoked or removed: the valid ones keep their share).
#
#   $load->key_list($prefix, $class, $status, @keys);
#
#       the keys, as key(), with the ids "${prefix}1", "${prefix}2"...
#
#   Apikey::Load::word();   (these three exported on demand)
#
#       16 random letters and digits: the part of a key made by a test
#       that no other key has.
#
#   Apikey::Load::unknown_keys($t, $n);
#   Apikey::Load::unknown_keys($t, $n, $prefix);
#
#       $n keys of the gen shape that the harness's database does not
#       hold: made by another database, "other" in $t->prefix() (made
#       here by $t->init_db); with $prefix, $n more not of that shape
#       ("$prefix-U1-" . word()...).
#
#   Apikey::Load::malformed_keys($key1, $key2, $n);
#
#       the first $n (2 to 5) of: $key1 with a wrong checksum, $key2
#       cut short, "short", a key with spaces, "ak_1".
#
#   my $ev = $load->pending({ id => status, ... }, default => status,
#                          name => 'revoke');
#   ... run the command ...
#   $load->done($ev);
#
#       around each command that changes keys: from pending() until
#       done() the key may get its old or its new status, after done()
#       only the new one.  "default" gives the status of every key not
#       listed that was added before pending() (a restore: the keys not
#       in the backup get 401).  Any process may call them (the truth
#       lives in files in dir).  A key added while its change is pending
#       is for the test to avoid.
#
#   $load->change({ id => status }, sub { ... }, %opts)
#
#       the same around a sub; returns what the sub returns.
#
#   $load->window($from, $to, { id => status }, name => 'grace end');
#
#       a change that happens by itself at a moment between two times
#       (an expiry): the key may get either status in between, only the
#       new one after $to.  A later change to the same key must not
#       cancel it while it is pending (the test keeps them apart).
#
#   $load->unusable($from, $to);
#
#       503 is expected, for any key, for requests in flight then (the
#       database made unusable on purpose).
#
#   $load->start();  $load->requests();  $load->wait_requests($n);
#   $load->stop();
#
#       start the clients; count the answers so far; wait for $n more
#       (up to 10 s); stop the clients and wait for them.
#
#   my $s = $load->check();
#
#       reads every answer and returns a summary: requests, wrong (the
#       wrong decisions), valid_rejected, revoked_accepted (a key whose
#       change to 401 had returned), invalid_accepted (a key that was
#       never valid: unknown, expired, malformed), unexpected_5xx,
#       dropped (a connection closed or failed without an answer),
#       retried (sent again on a new connection: a keep-alive
#       connection that nginx had closed between two requests without
#       "Connection: close" failed before any byte of an answer, as
#       when a worker exits), other (any other unexpected status),
#       status (count by status), classes (count by "class status"),
#       samples (the first wrong answers, for diag).
#       Apikey::Load::summary($s) is the summary as one line.
#
#   Files in dir: keys ("id class status added key"), events (the
#   changes, "pending", "done" and "unusable" lines), client.N (one
#   line an answer: "sent answered id status retried", times in
#   seconds), stop.
#
#   $load->ok(%opts);
#
#       check() and the assertions of a test: some requests (min, 100),
#       0 wrong decisions, 0 unexpected 5xx, 0 dropped connections, at
#       most "retried" requests retried if given; diag of the summary.
#       Returns the summary.

use strict;
use warnings;

use Errno qw(EINTR);
use Exporter qw(import);
use Fcntl qw(O_WRONLY O_APPEND O_CREAT);
use IO::Socket::INET;
use IO::Select;
use POSIX qw();
use Socket qw(IPPROTO_TCP TCP_NODELAY);
use Test::More ();
use Time::HiRes qw(sleep time);

use Apikey::Harness qw(scaled);

our @EXPORT_OK = qw(word unknown_keys malformed_keys);

sub new {
    my ($class, %opts) = @_;

    die "Apikey::Load: port and dir needed" unless $opts{port} && $opts{dir};

    my $self = bless {
        clients => 4,
        uri     => '/',
        header  => 'X-API-Key',
        host    => 'localhost',
        seconds => 60,
        timeout => 10,
        %opts,
        pids    => [],
        parent  => $$,
    }, $class;

    mkdir $self->{dir} unless -d $self->{dir};
    -d $self->{dir} or die "$self->{dir}: $!";

    for my $f (qw(keys events)) {
        open my $fh, '>', "$self->{dir}/$f" or die "$self->{dir}/$f: $!";
        close $fh;
    }

    unlink "$self->{dir}/stop";

    return $self;
}

# one line appended in one write: lines from several processes never mix

sub append {
    my ($self, $file, $line) = @_;

    sysopen(my $fh, "$self->{dir}/$file", O_WRONLY | O_APPEND | O_CREAT)
        or die "$file: $!";
    syswrite($fh, $line) == length $line or die "$file: $!";
    close $fh;
}

sub key {
    my ($self, $id, $key, $class, $status, %opts) = @_;

    die "Apikey::Load: id \"$id\"" if $id !~ /^\S+$/;
    die "Apikey::Load: key of $id" if $key =~ /[\r\n]/;

    # a weight is the same line again: the clients pick each line alike,
    # and the checker reads the same key each time

    my $line = sprintf("%s %s %s %.6f %s\n", $id, $class, $status, time(),
                       $key);

    $self->append('keys', $line x ($opts{weight} // 1));
}

sub key_list {
    my ($self, $prefix, $class, $status, @keys) = @_;

    $self->key("$prefix$_", $keys[$_ - 1], $class, $status) for 1 .. @keys;
}

sub word {
    return join('', map { ('a' .. 'z', 0 .. 9)[int rand 36] } 1 .. 16);
}

sub unknown_keys {
    my ($t, $n, $prefix) = @_;

    my $other = $t->prefix() . '/other';

    $t->init_db({ db => $other });

    my @keys = split /\n/, $t->ctl_ok({ db => $other }, 'gen', '--count', $n);
    push @keys, map { "$prefix-U$_-" . word() } 1 .. $n if defined $prefix;

    return @keys;
}

sub malformed_keys {
    my ($key1, $key2, $n) = @_;

    (my $badsum = $key1) =~ s/(.)$/$1 eq 'A' ? 'B' : 'A'/e;

    my @keys = ($badsum, substr($key2, 0, 10), 'short',
                'ak_abc def ghi jkl mno pqr stu vwx yz0123', 'ak_1');

    return @keys[0 .. $n - 1];
}

# the truth: "pending N time name default id=status..." and "done N time"

my $seq = 0;

sub pending {
    my ($self, $states, %opts) = @_;

    my $ev = "$$." . $seq++;
    my $line = sprintf("pending %s %.6f %s %s %s\n", $ev, time(),
                       $opts{name} // 'change', $opts{default} // '-',
                       join(' ', map { "$_=$states->{$_}" }
                                 sort keys %$states));

    $self->append('events', $line);

    return $ev;
}

sub done {
    my ($self, $ev) = @_;
    $self->append('events', sprintf("done %s %.6f\n", $ev, time()));
}

sub change {
    my ($self, $states, $sub, %opts) = @_;

    my $ev = $self->pending($states, %opts);
    my @r = wantarray ? $sub->() : scalar $sub->();
    $self->done($ev);

    return wantarray ? @r : $r[0];
}

sub window {
    my ($self, $from, $to, $states, %opts) = @_;

    my $ev = "$$." . $seq++;

    $self->append('events',
                  sprintf("pending %s %.6f %s - %s\ndone %s %.6f\n",
                          $ev, $from, $opts{name} // 'window',
                          join(' ', map { "$_=$states->{$_}" }
                                    sort keys %$states),
                          $ev, $to));
}

sub unusable {
    my ($self, $from, $to) = @_;
    $self->append('events', sprintf("unusable %.6f %.6f\n", $from, $to));
}

# the clients

sub start {
    my ($self) = @_;

    for my $n (1 .. $self->{clients}) {
        my $pid = fork() // die "fork: $!";

        if ($pid == 0) {
            eval { $self->client($n) };
            POSIX::_exit($@ ? 1 : 0);
        }

        push @{$self->{pids}}, $pid;
    }

    return $self;
}

sub client {
    my ($self, $n) = @_;

    my $dir = $self->{dir};
    my $end = time() + scaled($self->{seconds});
    my (@keys, $keys_size, $kfh, $s, $buf);

    srand($$ ^ int(time() * 1000));

    open my $log, '>', "$dir/client.$n" or die "client.$n: $!";
    $log->autoflush(1);

    open $kfh, '<', "$dir/keys" or die "keys: $!";

    my $i = 0;

    while (time() < $end) {

        # new keys, and the stop file, looked at every few requests

        if ($i++ % 20 == 0) {
            last if -e "$dir/stop";

            my $size = -s "$dir/keys";

            if (!defined $keys_size || $size != $keys_size) {
                $keys_size = $size;
                seek($kfh, 0, 1);

                while (my $line = <$kfh>) {
                    if ($line !~ /\n\z/) {
                        seek($kfh, -length($line), 1);
                        last;
                    }

                    chomp $line;
                    my ($id, undef, undef, undef, $key) =
                        split / /, $line, 5;
                    push @keys, [ $id, $key ];
                }
            }
        }

        if (!@keys) {
            sleep 0.01;
            next;
        }

        my ($id, $key) = @{$keys[int rand @keys]};
        my $req = "GET $self->{uri} HTTP/1.1\r\nHost: $self->{host}\r\n"
                  . "$self->{header}: $key\r\n\r\n";

        # a connection closed by nginx between two requests (keep-alive
        # ends) is no drop: one more try on a new connection, for a
        # request on a connection that has already answered

        my ($sent, $status, $close, $retried);

        for my $try (1, 2) {
            my $reused = defined $s;

            if (!$s) {
                $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                           PeerPort => $self->{port},
                                           Proto => 'tcp');
                if (!$s) {
                    $sent = time();
                    $status = 0;
                    last;
                }

                setsockopt($s, IPPROTO_TCP, TCP_NODELAY, 1);
                $buf = '';
            }

            $sent = time();
            ($status, $close) = $self->exchange($s, $req, \$buf);

            if ($status == 0 && $close eq 'before' && $reused && $try == 1) {
                close $s;
                undef $s;
                $retried = 1;
                next;
            }

            last;
        }

        my $got = time();

        printf $log "%.6f %.6f %s %d %d\n", $sent, $got, $id, $status,
                    $retried ? 1 : 0;

        sleep $self->{delay} if $self->{delay};

        if ($status == 0 || $close) {
            close $s if $s;
            undef $s;
        }
    }

    close $log;
}

# one request and its answer: (status, close) where close is '' to keep
# the connection, 'close' when nginx said so, 'before' when it was
# closed before any byte of the answer, 'error' otherwise (status 0)

sub exchange {
    my ($self, $s, $req, $buf) = @_;

    local $SIG{PIPE} = 'IGNORE';

    my $off = 0;

    while ($off < length $req) {
        my $n = syswrite($s, $req, length($req) - $off, $off);

        if (!defined $n) {
            next if $! == EINTR;
            return (0, 'before');
        }

        $off += $n;
    }

    my $sel = IO::Select->new($s);
    my $timeout = scaled($self->{timeout});
    my ($status, $length, $close, $head_end);

    while (1) {
        if (!defined $head_end) {
            my $p = index($$buf, "\r\n\r\n");

            if ($p >= 0) {
                $head_end = $p + 4;
                my $head = substr($$buf, 0, $p);

                ($status) = $head =~ m{^HTTP/1\.[01] (\d{3})};
                return (0, 'error') unless $status;

                ($length) = $head =~ /^Content-Length:\s*(\d+)/mi;
                $close = $head =~ /^Connection:\s*close/mi ? 'close' : '';

                return (0, 'error')
                    if !defined $length && $head =~ /^Transfer-Encoding:/mi;
                $length //= 0;
            }
        }

        if (defined $head_end && length($$buf) >= $head_end + $length) {
            substr($$buf, 0, $head_end + $length) = '';
            return ($status, $close);
        }

        return (0, 'error') unless $sel->can_read($timeout);

        my $n = sysread($s, $$buf, 65536, length $$buf);

        next if !defined $n && $! == EINTR;

        if (!$n) {
            return (0, length($$buf) ? 'error' : 'before');
        }
    }
}

sub requests {
    my ($self) = @_;

    my $lines = 0;

    for my $n (1 .. $self->{clients}) {
        open my $log, '<', "$self->{dir}/client.$n" or next;
        $lines++ while <$log>;
        close $log;
    }

    return $lines;
}

sub wait_requests {
    my ($self, $n) = @_;

    my $want = $self->requests() + $n;
    my $end = time() + scaled(10);

    sleep 0.05 while $self->requests() < $want && time() < $end;
}

sub stop {
    my ($self) = @_;

    open my $fh, '>', "$self->{dir}/stop" or die "stop: $!";
    close $fh;

    for my $pid (@{$self->{pids}}) {
        waitpid($pid, 0);
        $self->{failed}++ if $?;
    }

    $self->{pids} = [];

    return $self;
}

sub DESTROY {
    my ($self) = @_;

    return if $$ != $self->{parent} || !@{$self->{pids} || []};

    kill 'KILL', @{$self->{pids}};
    waitpid($_, 0) for @{$self->{pids}};
}

# the checker

sub truth {
    my ($self) = @_;

    my (%keys, @order, %ev, @evs, @unusable);

    open my $fh, '<', "$self->{dir}/keys" or die "keys: $!";

    while (<$fh>) {
        chomp;
        my ($id, $class, $status, $added) = split / /, $_, 5;
        push @order, $id unless $keys{$id};
        $keys{$id} = { class => $class, initial => $status, added => $added,
                       events => [] };
    }

    close $fh;

    open $fh, '<', "$self->{dir}/events" or die "events: $!";

    while (<$fh>) {
        chomp;
        my ($what, @f) = split / /;

        if ($what eq 'pending') {
            my ($n, $t, $name, $default, @states) = @f;
            my $e = { start => $t, end => 9e99, name => $name,
                      default => $default eq '-' ? undef : $default,
                      states => { map { split /=/, $_, 2 } @states } };
            $ev{$n} = $e;
            push @evs, $e;

        } elsif ($what eq 'done') {
            $ev{$f[0]}{end} = $f[1] if $ev{$f[0]};

        } elsif ($what eq 'unusable') {
            push @unusable, [ @f ];
        }
    }

    close $fh;

    # each key's changes, in the order they started: the keys named, and
    # with a default (a restore) every other key added before it

    for my $e (sort { $a->{start} <=> $b->{start} } @evs) {
        for my $id (keys %{$e->{states}}) {
            next unless $keys{$id};
            push @{$keys{$id}{events}},
                 [ $e->{start}, $e->{end}, $e->{states}{$id} ];
        }

        next unless defined $e->{default};

        for my $id (@order) {
            next if exists $e->{states}{$id}
                    || $keys{$id}{added} >= $e->{start};
            push @{$keys{$id}{events}},
                 [ $e->{start}, $e->{end}, $e->{default} ];
        }
    }

    return (\%keys, \@unusable);
}

# the statuses a request in flight from $a to $b may get: the initial
# status unless a change had returned before it was sent; a change's
# status if it can have committed before a moment in flight with no
# other change forced between the two

#
# Only a change that had returned can be forced out, and only by another
# that had returned too and started after it ended; so of the changes
# that started by $b, those that ended more than their longest duration
# before the last returned one started are forced out by it and force
# out none of the others: left out, the answer is the same, and a long
# load with thousands of changes a key is checked in linear time

sub allowed {
    my ($k, $a, $b) = @_;

    my $evs = $k->{events};
    my %allowed;

    if (!defined $k->{longest}) {
        $k->{longest} = 0;
        $k->{open} = [];

        for my $i (0 .. $#$evs) {
            my ($s, $e) = @{$evs->[$i]};

            if ($e >= 9e99) {
                push @{$k->{open}}, $i;
            } elsif ($e - $s > $k->{longest}) {
                $k->{longest} = $e - $s;
            }
        }
    }

    # the changes that started by $b (sorted by start), from the last

    my ($lo, $hi) = (0, scalar @$evs);

    while ($lo < $hi) {
        my $m = ($lo + $hi) >> 1;

        if ($evs->[$m][0] <= $b) {
            $lo = $m + 1;
        } else {
            $hi = $m;
        }
    }

    my ($last, @near);
    my $i = $lo - 1;

    for (; $i >= 0; $i--) {
        my ($s, $e) = @{$evs->[$i]};

        last if defined $last && $s < $last - $k->{longest};

        push @near, $i;
        $last = $s if !defined $last && $e <= $a;
    }

    push @near, grep { $_ <= $i } @{$k->{open}};

    $allowed{$k->{initial}} = 1 unless defined $last;

    for my $i (@near) {
        my ($s, $e, $status) = @{$evs->[$i]};

        next if $allowed{$status};

        my ($c, $x) = $e <= $a ? ($e, $a) : $s <= $a ? ($a, $a) : ($s, $s);

        my $forced = $c < $x
                     && grep { $_ != $i && $evs->[$_][0] >= $c
                               && $evs->[$_][1] <= $x } @near;

        $allowed{$status} = 1 unless $forced;
    }

    return \%allowed;
}

sub check {
    my ($self) = @_;

    my ($keys, $unusable) = $self->truth();
    my %s = (requests => 0, wrong => 0, valid_rejected => 0,
             revoked_accepted => 0, invalid_accepted => 0,
             unexpected_5xx => 0, dropped => 0, other => 0, retried => 0,
             status => {}, classes => {}, samples => [],
             failed_clients => $self->{failed} // 0);

    for my $n (1 .. $self->{clients}) {
        open my $log, '<', "$self->{dir}/client.$n" or next;

        while (<$log>) {
            my ($a, $b, $id, $status, $retried) = split;
            my $k = $keys->{$id} or die "Apikey::Load: unknown id $id";

            $s{requests}++;
            $s{retried}++ if $retried;
            $s{status}{$status}++;
            $s{classes}{"$k->{class} $status"}++;

            my $allowed = allowed($k, $a, $b);

            $allowed->{503} = 1
                if grep { $a <= $_->[1] && $b >= $_->[0] } @$unusable;

            next if $allowed->{$status};

            my $what;

            if ($status == 0) {
                $what = 'dropped';
            } elsif ($status >= 500) {
                $what = 'unexpected_5xx';
            } elsif ($status == 200) {
                my $valid = $k->{initial} == 200
                            || grep { $_->[2] == 200 } @{$k->{events}};

                $what = $valid ? 'revoked_accepted' : 'invalid_accepted';
            } elsif ($allowed->{200}) {
                $what = 'valid_rejected';
            } else {
                $what = 'other';
            }

            $s{$what}++;
            $s{wrong}++ unless $what eq 'dropped' || $what eq 'unexpected_5xx';

            push @{$s{samples}}, sprintf("%s: %s (%s) got %d, sent %.6f,"
                                         . " answered %.6f, allowed %s",
                                         $what, $id, $k->{class}, $status,
                                         $a, $b, join('/', sort keys
                                                               %$allowed))
                if @{$s{samples}} < 10;
        }

        close $log;
    }

    return \%s;
}

sub summary {
    my ($s) = @_;

    return sprintf("%d requests, %d wrong decisions (%d valid rejected,"
                   . " %d revoked accepted, %d invalid accepted, %d other),"
                   . " %d unexpected 5xx, %d dropped, %d retried; %s",
                   @$s{qw(requests wrong valid_rejected revoked_accepted
                          invalid_accepted other unexpected_5xx dropped
                          retried)},
                   join(', ', map { "$_: $s->{classes}{$_}" }
                              sort keys %{$s->{classes}}));
}

sub ok {
    my ($self, %opts) = @_;

    my $s = $self->check();
    my $name = $opts{name} // 'load';

    Test::More::diag("$name: " . summary($s));

    Test::More::cmp_ok($s->{requests}, '>=', $opts{min} // 100,
                       "$name: enough requests");
    Test::More::is($s->{failed_clients}, 0, "$name: every client ran");
    Test::More::is($s->{wrong}, 0, "$name: no wrong decision")
        or Test::More::diag(join("\n", @{$s->{samples}}));
    Test::More::is($s->{unexpected_5xx}, 0, "$name: no unexpected 5xx")
        or Test::More::diag(join("\n", @{$s->{samples}}));
    Test::More::is($s->{dropped}, 0, "$name: no dropped connection")
        or Test::More::diag(join("\n", @{$s->{samples}}));

    Test::More::cmp_ok($s->{retried}, '<=', $opts{retried},
                       "$name: at most $opts{retried} requests retried")
        if defined $opts{retried};

    return $s;
}

1;
