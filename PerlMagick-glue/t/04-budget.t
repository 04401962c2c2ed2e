# The server's limits, as croaks naming them: a uid's names, the budget.
use strict;
use warnings;
use lib 't/lib';
use DPCTest;
use Test::More;
use Image::Magick;
use Image::Magick::DPC qw(:all);

my $names = start_server('names', '--shm-uid-names', '1');
configure(socket => $names->{socket});
my $image = test_image();
ok(publish($image, 'first'), 'the one name a uid may have');
eval { publish($image, 'second') };
like($@, qr/^Image::Magick::DPC::publish: shared-memory budget spent: too many names .*\(dpc-shm-uid-names\).*; remove names no longer needed/,
    'a second name: the quota named, with the fix');
remove('first');
ok(publish($image, 'second'), 'after remove, room again');
is(stop_server($names), 0, 'server stops cleanly');

my $small = start_server('small', '--shm-budget', '64KiB');
my $big = Image::Magick->new(size => '200x200');
$big->Read('xc:red');
eval { publish($big, 'big', socket => $small->{socket}) };
like($@, qr/^Image::Magick::DPC::publish: shared-memory budget spent: .*\(dpc-shm-budget\)/,
    'an image larger than the budget: the budget named');
is_deeply([names(socket => $small->{socket})], [], 'nothing published');
is(stop_server($small), 0, 'server stops cleanly');
done_testing();
