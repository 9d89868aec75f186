package Apikey::Writers;

# Writer loops for a load (Apikey::Load): each loop a process of its
# own running apikeyctl again and again while nginx serves, until told
# to stop; each command's result a line of its log.  Core Perl only.
#
#   my $w = Apikey::Writers->new($t);
#
#       $t the harness (Apikey::Harness): its apikeyctl, database,
#       secret and prefix, where the files live: writers.<name> (the
#       logs), writers.stop, gate, gate.restore, ctl.<pid>.*.
#
#   $w->writer($name, sub {
#       my ($n, $shared, $ctl, $exclusive) = @_;
#       ...
#       return 1;
#   });
#
#       forks a loop that calls the sub with $n = 1, 2, ... until the
#       sub returns false, dies (logged as "failed: ...") or stop() is
#       called.  $ctl->(@args) runs apikeyctl as ctl() does, logs "ok"
#       or "failed: exit N: stderr" in writers.<name> and returns (exit
#       code, stdout).  $shared->(sub { ... }) runs the sub under a
#       shared lock, not taken while an exclusive one is wanted (a
#       writer-preferring lock); $exclusive->(sub { ... }) runs it
#       alone: the others finish the command they run and wait (a
#       restore, whose effect on each key the test then knows).  Both
#       return what the sub returns.
#
#   $w->stopping();
#
#       true once stop() was called (a loop that sleeps checks it).
#
#   $w->stop();
#
#       tells the loops to stop and waits for them.
#
#   my @lines = $w->results($name);
#
#       the lines of writers.<name>, one a command.
#
#   $w->restorer($load, { id => status, ... }, $backup);
#
#       the loop "restore": every 2 s, "restore --force $backup" alone
#       (under the exclusive lock), the load told each key's status in
#       the backup and 401 for every other key.
#
#   my $rc = Apikey::Writers::rotate($load, $ctl, $id);
#
#       "rotate $id --grace 1s --new-id $id.new" through a loop's $ctl,
#       the load (Apikey::Load) told: the new key, class rotated_new,
#       valid from the return; the old one until the grace ends, within
#       a second of the rotate's start and return plus the grace (the
#       expiry is in whole seconds, and nginx's time is cached per event
#       loop).  Returns the exit code once the grace has ended: run
#       under $shared, no restore comes in between.
#
#   my ($rc, $out, $err) = $w->ctl({ input => $text }, @args);
#
#       apikeyctl on the harness's database, as $t->ctl, with files of
#       its own (ctl.<pid>.in, out, err): any process may run it at
#       once.  The harness's own checks are left out (no database
#       recorded).

use strict;
use warnings;

use Fcntl qw(:flock);
use POSIX qw();
use Time::HiRes qw(sleep time);

sub new {
    my ($class, $t) = @_;

    my $dir = $t->prefix();

    return bless { t => $t, dir => $dir, stop => "$dir/writers.stop",
                   gate => "$dir/gate", want => "$dir/gate.restore",
                   pids => [] }, $class;
}

sub writer {
    my ($self, $name, $body) = @_;

    my ($dir, $stop, $want) = @$self{qw(dir stop want)};

    my $pid = fork() // die "fork: $!";

    if ($pid == 0) {
        srand($$ ^ int(time() * 1000));

        open my $log, '>', "$dir/writers.$name" or POSIX::_exit(1);
        $log->autoflush(1);

        open my $lock, '>>', $self->{gate} or POSIX::_exit(1);

        my $shared = sub {
            my ($sub) = @_;

            sleep 0.01 while -e $want && !-e $stop;
            flock($lock, LOCK_SH) or die "flock: $!";
            my @r = $sub->();
            flock($lock, LOCK_UN);

            return @r;
        };

        my $exclusive = sub {
            my ($sub) = @_;

            open my $fh, '>', $want or die "$want: $!";
            close $fh;

            flock($lock, LOCK_EX) or die "flock: $!";
            my @r = $sub->();
            flock($lock, LOCK_UN);

            unlink $want;

            return @r;
        };

        my $ctl = sub {
            my ($rc, $out, $err) = $self->ctl(@_);
            print $log $rc == 0 ? "ok\n" : "failed: exit $rc: $err\n";
            return ($rc, $out);
        };

        my $n = 0;

        eval {
            while (!-e $stop) {
                last unless $body->(++$n, $shared, $ctl, $exclusive);
            }
        };

        print $log "failed: $@" if $@;
        close $log;
        POSIX::_exit(0);
    }

    push @{$self->{pids}}, $pid;
}

sub restorer {
    my ($self, $load, $status, $backup) = @_;

    $self->writer('restore', sub {
        my ($n, $shared, $ctl, $exclusive) = @_;

        sleep 2;
        return 0 if $self->stopping();

        $exclusive->(sub {
            $load->change($status,
                          sub { $ctl->('restore', '--force', $backup) },
                          default => 401, name => 'restore');
        });

        return 1;
    });
}

sub stopping {
    my ($self) = @_;
    return -e $self->{stop};
}

sub stop {
    my ($self) = @_;

    open my $fh, '>', $self->{stop} or die "$self->{stop}: $!";
    close $fh;

    waitpid($_, 0) for @{$self->{pids}};
    $self->{pids} = [];
}

sub results {
    my ($self, $name) = @_;

    my $file = "$self->{dir}/writers.$name";

    open my $fh, '<', $file or die "$file: $!";
    my @lines = <$fh>;
    close $fh;

    return @lines;
}

sub rotate {
    my ($load, $ctl, $id) = @_;

    my $start = time();
    my ($rc, $out) = $ctl->('rotate', $id, '--grace', '1s',
                            '--new-id', "$id.new");
    my $end = time();

    return $rc if $rc != 0;

    chomp $out;
    $load->key("$id.new", $out, 'rotated_new', 200);
    $load->window($start + 1 - 1, $end + 1 + 1.5, { $id => 401 },
                  name => 'grace');

    sleep 0.02 while time() < $end + 1 + 1.6;

    return $rc;
}

sub ctl {
    my ($self, @args) = @_;

    my $t = $self->{t};

    my %opts;
    %opts = %{shift @args} if ref $args[0] eq 'HASH';

    my ($in, $out, $err) = map { "$self->{dir}/ctl.$$.$_" } qw(in out err);

    open my $fh, '>', $in or die "$in: $!";
    print $fh $opts{input} // '';
    close $fh;

    my $pid = fork() // die "fork: $!";

    if ($pid == 0) {
        open STDIN, '<', $in or POSIX::_exit(127);
        open STDOUT, '>', $out or POSIX::_exit(127);
        open STDERR, '>', $err or POSIX::_exit(127);
        { exec $t->{apikeyctl}, '-d', $t->db(), '-s', $t->secret(), @args; }
        POSIX::_exit(127);
    }

    waitpid($pid, 0);
    my $rc = $? & 127 ? 128 + ($? & 127) : $? >> 8;

    return ($rc, Apikey::Harness::slurp($out), Apikey::Harness::slurp($err));
}

1;
